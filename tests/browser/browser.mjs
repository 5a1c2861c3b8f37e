// Starts headless Chromium through playwright-core (FLOW_PLAYWRIGHT names the
// node_modules that hold it, FLOW_CHROMIUM the browser) and watches every
// request a page makes, so a check can say what it loaded from where.
import { createRequire } from 'node:module';

const require = createRequire(process.env.FLOW_PLAYWRIGHT + '/');
const { chromium } = require('playwright-core');

export async function open() {
  const browser = await chromium.launch({
    executablePath: process.env.FLOW_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return { browser, page, requests, errors };
}

// Prints the facts a check gathered as one JSON line, and ends the browser.
export async function done(session, facts) {
  await session.browser.close();
  process.stdout.write(JSON.stringify({ ...facts, requests: session.requests, errors: session.errors }) + '\n');
}
