// Opens the page of a run in progress (argument 1: its URL; 2: the screenshot
// dir) and reports its status as first shown, then waits (without reloading) until
// the page shows the finished run's report, and reports that status, whether the
// window is the same one (no reload), and the verification line.
import { open, done } from './browser.mjs';

const [url, shots] = process.argv.slice(2);
const session = await open();
const { page } = session;
await page.goto(url);
const facts = { before: (await page.textContent('#run-status')).trim() };
await page.evaluate(() => { window.flowSameWindow = true; });
await page.screenshot({ path: `${shots}/live-running.png`, fullPage: true });
await page.waitForSelector('#verification', { timeout: 90000 });
facts.after = (await page.textContent('#run-status')).trim();
facts.sameWindow = await page.evaluate(() => window.flowSameWindow === true);
facts.verification = await page.textContent('#verification');
await page.screenshot({ path: `${shots}/live-finished.png`, fullPage: true });
await done(session, facts);
