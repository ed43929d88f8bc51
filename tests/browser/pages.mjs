// Drives the gateway's pages in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core, never a downloaded browser): runs axe-core on each
// page, takes a screenshot of each, and walks a visitor's path (keyboard
// skip link, search, open a dataset, sort, filter, download the CSV), then a
// member of staff's (sign in through the test identity provider, read an
// internal dataset, sign out) and an auditor's (sign in, today's accesses on
// the dashboard, which axe checks too) and a steward's (sign in, the
// inventory, which axe checks too), and a steward who manages datasets (edit
// a description, upload a version, see the dry run, publish; axe on each form).
// Prints one JSON object; tests/api/pages_browser.rs checks it.
// Usage: node pages.mjs <gateway base URL> <screenshot folder>
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
// Evaluated through the DevTools protocol rather than added as a <script>:
// the pages' Content-Security-Policy (rightly) refuses inline scripts.
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const [base, screenshots] = process.argv.slice(2);
mkdirSync(screenshots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const output = { axe: {}, checks: {}, console_errors: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fr-FR' });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') output.console_errors.push({ url: page.url(), text: message.text() });
  });

  const audited = [
    ['home', '/'],
    ['catalogue', '/datasets'],
    ['dataset-open', '/datasets/qualite-air-stations'],
    ['dataset-closed', '/datasets/menages-precarite-energetique'],
    ['catalogue-en', '/datasets?lang=en&access=open'],
    ['dataset-map', '/datasets/releves-piezometriques'],
    ['not-found', '/datasets/nope'],
  ];
  const audit = async (name, path) => {
    const response = await page.goto(base + path);
    await page.evaluate(axeSource);
    const result = await page.evaluate(async () =>
      // WCAG 2.1 A and AA, the level RGAA 4.1 follows.
      window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
    );
    output.axe[name] = {
      status: response.status(),
      violations: result.violations.map((violation) => ({
        id: violation.id,
        impact: violation.impact,
        nodes: violation.nodes.map((node) => node.target.join(' ')).slice(0, 5),
      })),
      passes: result.passes.length,
    };
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  };
  for (const [name, path] of audited) {
    await audit(name, path);
  }
  // The top of the catalogue, for the README (docs/screenshots/).
  await page.goto(base + '/datasets');
  await page.screenshot({ path: join(screenshots, 'readme-catalogue.png') });

  // The first Tab reaches the skip link.
  await page.goto(base + '/');
  await page.keyboard.press('Tab');
  output.checks.first_tab = await page.evaluate(() => document.activeElement.className);

  // Search from the home page.
  await page.fill('#q', 'air');
  await Promise.all([page.waitForURL(/\/datasets\?q=air/), page.press('#q', 'Enter')]);
  output.checks.search_url = page.url();
  output.checks.search_results = await page.$$eval('ul.results h3 a', (links) => links.map((a) => a.getAttribute('href')));

  // Open the dataset, sort by concentration, then filter on one pollutant.
  await Promise.all([page.waitForURL(/qualite-air-stations/), page.click('a[href="/datasets/qualite-air-stations"]')]);
  await Promise.all([page.waitForURL(/order=concentration_ugm3\.asc/), page.click('#preview-table th a[href*="order=concentration_ugm3.asc"]')]);
  output.checks.sorted = await page.$$eval('#preview-table tbody tr', (rows) => rows.map((row) => row.cells[5].textContent));
  await page.selectOption('#filter-column', 'polluant');
  await page.selectOption('#filter-operator', 'eq');
  await page.fill('#filter-value', 'no2');
  await Promise.all([page.waitForURL(/polluant=eq\.no2/), page.click('fieldset.filter button[type="submit"]')]);
  output.checks.filtered_url = page.url();
  output.checks.filtered = await page.$$eval('#preview-table tbody tr', (rows) => rows.map((row) => row.cells[4].textContent));
  await page.screenshot({ path: join(screenshots, 'dataset-filtered.png'), fullPage: true });

  // The spreadsheet CSV the download link gives.
  const href = await page.getAttribute('a[href*="format=csv"]', 'href');
  const csv = await page.request.get(base + href);
  const bytes = await csv.body();
  output.checks.csv = {
    status: csv.status(),
    content_type: csv.headers()['content-type'],
    first_bytes: [...bytes.subarray(0, 3)],
    header: bytes.toString('utf8').replace(/^\uFEFF/, '').split('\r\n')[0].split('\n')[0],
    lines: bytes.toString('utf8').trim().split('\n').length,
  };

  // What an anonymous visitor sees of a closed dataset.
  await page.goto(base + '/datasets/menages-precarite-energetique');
  output.checks.closed_text = await page.evaluate(() => document.body.innerText);
  output.checks.closed_tables = await page.$$eval('table', (tables) => tables.length);

  // Through the identity provider's page (the test provider lists its users).
  const signIn = async (user) => {
    await Promise.all([page.waitForURL(/\/authorize\?/), page.click('header a[href^="/login"]')]);
    await Promise.all([page.waitForURL((url) => url.toString().startsWith(base)), page.click(`a:text-is("${user}")`)]);
  };
  const header = () => page.$eval('header', (element) => element.innerText);

  // Staff: sign in from an internal dataset's page, read it, sign out.
  await page.goto(base + '/datasets/infractions-videoprotection');
  output.checks.internal_anonymous_tables = await page.$$eval('#preview-table', (tables) => tables.length);
  await signIn('agent.dupont');
  output.checks.internal_url = page.url();
  output.checks.internal_header = await header();
  output.checks.internal_rows = await page.$$eval('#preview-table tbody tr', (rows) => rows.length);
  await page.screenshot({ path: join(screenshots, 'dataset-internal.png'), fullPage: true });
  await Promise.all([page.waitForURL(base + '/'), page.click('header form[action="/logout"] button')]);
  output.checks.signed_out_header = await header();
  await page.goto(base + '/datasets/infractions-videoprotection');
  output.checks.internal_after_sign_out = await page.$$eval('#preview-table', (tables) => tables.length);

  // Auditor: the dashboard refuses a visitor, then shows today's accesses.
  const refused = await page.goto(base + '/audit');
  output.checks.audit_anonymous_status = refused.status();
  await signIn('auditrice.martin');
  output.checks.audit_url = page.url();
  await audit('audit', '/audit');
  await page.screenshot({ path: join(screenshots, 'readme-audit.png') });
  const today = new Date().toISOString().slice(0, 10);
  output.checks.audit_today = await page.$$eval(
    '#per-day-table tbody tr',
    (rows, day) => rows.filter((row) => row.cells[0].textContent === day).map((row) => [row.cells[1].textContent, row.cells[2].textContent]),
    today,
  );
  output.checks.audit_events = await page.$$eval('#events-table tbody tr', (rows) =>
    rows.map((row) => ({ subject: row.cells[1].textContent, action: row.cells[3].textContent, dataset: row.cells[4].textContent, decision: row.cells[5].textContent })),
  );
  await Promise.all([page.waitForURL(/\/audit\/verify$/), page.click('form[action="/audit/verify"] button')]);
  output.checks.audit_verification = await page.$eval('#verification', (element) => element.textContent);

  // Steward: the inventory refuses a visitor, then shows the register's tables.
  await Promise.all([page.waitForURL(base + '/'), page.click('header form[action="/logout"] button')]);
  const inventoryRefused = await page.goto(base + '/inventory');
  output.checks.inventory_anonymous_status = inventoryRefused.status();
  await signIn('gestionnaire.leroy');
  output.checks.inventory_url = page.url();
  await audit('inventory', '/inventory');
  output.checks.inventory_total = await page.$eval('#inventory-total', (element) => element.textContent);
  output.checks.inventory_charts = await page.$$eval('figure.chart svg', (charts) => charts.length);
  output.checks.inventory_access = await page.$$eval('#access-table tbody tr', (rows) =>
    rows.map((row) => [row.cells[0].textContent, row.cells[1].textContent, row.cells[2].textContent]),
  );
  // The top of the inventory, for the README (docs/screenshots/).
  await page.goto(base + '/inventory');
  await page.screenshot({ path: join(screenshots, 'readme-inventory.png') });
  output.checks.inventory_forms_for_reader = await page.$$eval('a[href$="/edit"], a[href$="/upload"]', (links) => links.length);

  // A steward who manages the metropole's datasets: from the inventory, edit
  // a dataset's description, then upload a new version, see the dry run and publish.
  await Promise.all([page.waitForURL(base + '/'), page.click('header form[action="/logout"] button')]);
  await page.goto(base + '/inventory');
  await signIn('redactrice.bernard');
  const dataset = process.env.STEWARD_DATASET || 'comptages-velo-navigateur';
  await Promise.all([page.waitForURL(new RegExp(`/datasets/${dataset}/edit$`)), page.click(`#managed-table a[href="/datasets/${dataset}/edit"]`)]);
  await audit('steward-edit', `/datasets/${dataset}/edit`);
  await page.fill('#field-description', 'Passages par compteur, relevés chaque heure.');
  await page.fill('#field-reason', 'relecture dans le navigateur');
  // The answer to the POST is at the same address: wait for its notice.
  await page.click('form.steward button[type="submit"]');
  await page.waitForSelector('#form-notice');
  output.checks.steward_saved = await page.$eval('#form-notice', (element) => element.textContent);
  await page.screenshot({ path: join(screenshots, 'steward-edit-saved.png'), fullPage: true });

  await page.goto(`${base}/datasets/${dataset}`);
  await Promise.all([page.waitForURL(new RegExp(`/datasets/${dataset}/upload$`)), page.click(`a[href="/datasets/${dataset}/upload"]`)]);
  await audit('steward-upload', `/datasets/${dataset}/upload`);
  await page.setInputFiles('#field-file', {
    name: 'comptages.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('compteur;passages\nPont-Hubert;12\nVouldy;40\n', 'utf8'),
  });
  await page.fill('#field-reason', 'livraison du navigateur');
  await Promise.all([page.waitForURL(/\/upload\/check$/), page.click('form[action$="/upload/check"] button[type="submit"]')]);
  output.checks.steward_report = {
    rows: await page.$eval('#report-rows', (element) => element.textContent),
    bad_rows: await page.$eval('#report-bad-rows', (element) => element.textContent),
  };
  await page.screenshot({ path: join(screenshots, 'steward-dry-run.png'), fullPage: true });
  // axe on the report as shown (the page is the answer to the form's POST).
  await page.evaluate(axeSource);
  const report = await page.evaluate(async () =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  output.axe['steward-report'] = {
    status: 200,
    violations: report.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      nodes: violation.nodes.map((node) => node.target.join(' ')).slice(0, 5),
    })),
    passes: report.passes.length,
  };
  await Promise.all([page.waitForURL(/\/upload\/publish$/), page.click('form.publish button[type="submit"]')]);
  output.checks.steward_published = await page.$eval('#upload-notice', (element) => element.textContent);
  await page.screenshot({ path: join(screenshots, 'steward-published.png'), fullPage: true });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(output));
