// Opens a report page (argument 1: the HTML file; 2: the screenshot dir;
// 3: the step to click) and reports what a user sees: the DAG's nodes and
// edges, the timeline's bars, whether clicking the step opened its log, what a
// log search finds, and every request the page made.
import { pathToFileURL } from 'node:url';
import { open, done } from './browser.mjs';

const [file, shots, step, search] = process.argv.slice(2);
const session = await open();
const { page } = session;
await page.goto(pathToFileURL(file).href);
await page.screenshot({ path: `${shots}/page.png`, fullPage: true });

const visible = async (selector) => {
  const all = await page.locator(selector).all();
  let n = 0;
  for (const e of all) if (await e.isVisible()) n++;
  return n;
};
const facts = {
  title: await page.title(),
  status: await page.textContent('#run-status'),
  verification: await page.textContent('#verification'),
  nodes: await page.locator('#dag g.node').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-step'))),
  visibleNodes: await visible('#dag g.node'),
  edges: await page.locator('#dag path').count(),
  bars: await page.locator('#timeline rect[data-step]').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-step'))),
  logVisibleBefore: await page.locator(`#step-${step} pre.log`).isVisible(),
};
await page.locator(`#node-${step}`).click();
facts.logVisibleAfter = await page.locator(`#step-${step} pre.log`).isVisible();
facts.logText = await page.locator(`#step-${step} pre.log`).innerText();
facts.reason = await page.locator(`#step-${step} pre.reason`).count() > 0
  ? await page.locator(`#step-${step} pre.reason`).innerText() : null;
await page.screenshot({ path: `${shots}/clicked-${step}.png`, fullPage: true });
if (search) {
  await page.fill('#search', search);
  facts.hits = await page.textContent('#hits');
  facts.visibleLines = await visible('pre.log .line');
  await page.screenshot({ path: `${shots}/search.png`, fullPage: true });
}
await done(session, facts);
