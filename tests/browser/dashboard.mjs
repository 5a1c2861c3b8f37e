// Opens the dashboard (argument 1: its base URL; 2: the screenshot dir) and
// reports what a user sees: the figures, the pipelines table, the chart, a page of
// runs; then clicks the first recent failure and reports whether its run page
// opened on the failed step's log; then filters by status.
import { open, done } from './browser.mjs';

const [base, shots] = process.argv.slice(2);
const session = await open();
const { page } = session;
await page.goto(base + '/');
await page.screenshot({ path: `${shots}/home.png`, fullPage: true });

const text = async (selector) => (await page.textContent(selector)).trim();
const facts = {
  total: await text('#total-runs'),
  rate: await text('#success-rate'),
  failed: await text('#failed-runs'),
  pipelineRuns: await text('#pipelines tr[data-pipeline="dash"] td.runs'),
  runRows: await page.locator('#runs tr[data-run]').count(),
  chartBars: await page.locator('#runs-chart rect.bar').count(),
  histograms: await page.locator('svg.histogram').count(),
};
const failure = page.locator('#failures a.failure').first();
const href = await failure.getAttribute('href');
const step = decodeURIComponent(href.split('#step-')[1]);
await failure.click();
await page.waitForURL((url) => url.pathname.startsWith('/runs/'));
facts.failureUrl = page.url();
const log = page.locator(`#step-${step} pre.log`);
await log.waitFor({ state: 'visible', timeout: 10000 }).catch(() => {});
facts.logVisible = await log.isVisible();
facts.reason = await page.locator(`#step-${step} pre.reason`).count() > 0
  ? await page.locator(`#step-${step} pre.reason`).innerText() : null;
await page.screenshot({ path: `${shots}/failure.png`, fullPage: true });

await page.goto(base + '/');
await page.selectOption('select[name="status"]', 'failed');
await Promise.all([page.waitForURL((url) => url.search.includes('status=failed')), page.click('form.filters button')]);
facts.filteredTotal = await text('#total-runs');
await page.screenshot({ path: `${shots}/filtered.png`, fullPage: true });
await done(session, facts);
