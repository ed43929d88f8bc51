// Opens each page given on the command line in headless Chromium (the
// distribution's /usr/bin/chromium, never a downloaded build), waits for the
// page to publish `window.__results`, and prints them as one JSON object
// keyed by URL. The pages run postgrest-js against the gateway (tests/api/browser.rs).
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const output = {};
try {
  for (const url of process.argv.slice(2)) {
    const page = await browser.newPage();
    const console_lines = [];
    page.on('console', (message) => console_lines.push(message.text()));
    await page.goto(url);
    await page.waitForFunction(() => window.__results !== undefined, null, { timeout: 30000 });
    output[url] = { results: await page.evaluate(() => window.__results), console: console_lines };
    await page.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(output));
