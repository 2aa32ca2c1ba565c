// The worklist and patient pages in a real headless Chromium (Debian's
// package), driven by playwright-core. Started by tests/it/browser.rs, which
// runs the service on real PostgreSQL and Mosquitto and publishes readings
// when this script asks for them.
//
// Protocol with the Rust side: this script prints `STEP <name>` on stdout
// and waits for a line `DONE <name>` on stdin before going on. Any failed
// check throws, and the process exits non-zero with the reason.
//
// Environment: THUISWACHT_URL, THUISWACHT_USER, THUISWACHT_PASSWORD,
// THUISWACHT_PATIENT (id of the patient whose readings are published),
// SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).

import { join } from 'node:path';
import assert from 'node:assert/strict';
import { accessibility, closeSteps, launch, log, screenshots, step } from './harness.mjs';

const base = process.env.THUISWACHT_URL;
const username = process.env.THUISWACHT_USER;
const password = process.env.THUISWACHT_PASSWORD;
const patientId = process.env.THUISWACHT_PATIENT;

const browser = await launch();

const consoleErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'nl-NL' });
  const page = await context.newPage();
  // Failed requests are checked by URL below (the refused second claim is
  // the one expected); any other console error fails the test.
  const failedRequests = [];
  page.on('response', (response) => {
    if (response.status() >= 400) failedRequests.push(`${response.status()} ${new URL(response.url()).pathname}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));

  // Signed out, the worklist sends the nurse to the login form.
  await page.goto(`${base}/`);
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  await page.getByLabel('Gebruikersnaam').fill(username);
  await page.getByLabel('Wachtwoord').fill(password);
  await page.getByRole('button', { name: 'Inloggen' }).click();
  await page.waitForURL(`${base}/`);
  log('signed in');

  // The worklist in Dutch, with the alert that was already there.
  await page.getByRole('heading', { level: 1, name: 'Werklijst' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'nl');
  await page.waitForFunction(() => document.getElementById('worklist')?.dataset.live === 'connected');
  const before = await page.locator('li.alert').count();
  assert.ok(before >= 1, 'the worklist shows the alert raised before sign-in');
  await page.locator('li.alert').first().getByText('Hoog', { exact: false }).waitFor();

  // A reading published over MQTT raises an alert that appears without a reload.
  await page.evaluate(() => { window.__notReloaded = true; });
  await step('publish-fever');
  const fever = page.locator('li.alert[data-rule="default/fever"]');
  await fever.waitFor({ timeout: 15000 });
  await fever.getByText('Temperatuur 39,6 °C', { exact: false }).waitFor();
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
  assert.ok((await page.locator('li.alert').count()) > before);
  log('fever alert appeared live');

  // The explanation card: value against its limit, the trend chart.
  const card = fever.locator('details.card');
  await card.locator('summary').click();
  await card.getByText('boven 38 °C', { exact: false }).first().waitFor();
  const chart = card.locator('figure.trend img');
  await chart.waitFor();
  await page.waitForFunction((element) => element.complete && element.naturalWidth > 0, await chart.elementHandle());

  // Claim: the row says who has it.
  await card.getByRole('button', { name: 'Oppakken' }).click();
  await fever.getByText(`Opgepakt door ${username}`).waitFor();
  log('claimed');

  // A colleague claimed the other alert meanwhile: the second claim says who has it.
  await step('colleague-claims-first');
  const taken = page.locator('li.alert[data-rule="default/spo2_low"]');
  await taken.getByText('Opgepakt door bram').waitFor({ timeout: 15000 });
  const takenId = await taken.getAttribute('data-alert');
  await page.evaluate((id) => {
    // The nurse clicks claim on a row that a colleague has just taken.
    document.querySelector(`li[data-alert="${id}"] details`).open = true;
  }, takenId);
  await page.locator(`li[data-alert="${takenId}"]`).getByRole('button', { name: 'Oppakken' }).click();
  await page.locator(`li[data-alert="${takenId}"] .action-result`).getByText('Al opgepakt door bram').waitFor();
  log('second claim refused with who has it');

  // Resolve the fever alert with an outcome: it leaves the list.
  const feverRow = fever;
  const feverId = await feverRow.getAttribute('data-alert');
  await feverRow.getByLabel('Uitkomst').selectOption('contacted_patient');
  await feverRow.getByRole('button', { name: 'Afronden' }).click();
  await page.locator(`li[data-alert="${feverId}"]`).waitFor({ state: 'detached' });
  log('resolved');
  await step('check-resolved');

  // Keyboard alone, on a fresh load: the skip link first, then a card
  // opens with Enter.
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.getElementById('worklist')?.dataset.live === 'connected');
  await page.keyboard.press('Tab');
  const skip = await page.evaluate(() => document.activeElement?.className);
  assert.equal(skip, 'skip-link');
  const summary = page.locator('li.alert details.card summary').first();
  await summary.focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('li.alert details.card').first().evaluate((details) => details.open), true);

  await accessibility(page, 'worklist');
  await page.screenshot({ path: join(screenshots, 'worklist.png'), fullPage: true });

  // The patient page: charts, devices, history.
  await page.goto(`${base}/patients/${patientId}`);
  await page.getByRole('heading', { level: 2, name: 'Metingen' }).waitFor();
  assert.ok((await page.locator('figure.metric-chart svg polyline').count()) >= 1, 'a chart is drawn');
  await page.getByRole('heading', { level: 2, name: 'Apparaten' }).waitFor();
  // The resolved fever alert with its outcome and history.
  await page.locator('table.past').getByText('Contact met cliënt gehad').first().waitFor();
  await page.locator('table.past ol.history').getByText('opgepakt', { exact: false }).first().waitFor();
  await accessibility(page, 'patient page');
  await page.screenshot({ path: join(screenshots, 'patient.png'), fullPage: true });

  // Switch to English; the choice is remembered on the next page.
  await page.getByRole('link', { name: 'English' }).click();
  await page.getByRole('heading', { level: 2, name: 'Measurements' }).waitFor();
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.getByRole('link', { name: 'Worklist' }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Worklist' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await accessibility(page, 'worklist in English');
  await page.screenshot({ path: join(screenshots, 'worklist-en.png'), fullPage: true });

  assert.deepEqual(consoleErrors, [], 'the pages logged no errors (CSP refusals included)');
  assert.deepEqual(failedRequests, [`409 /api/v1/alerts/${takenId}/claim`], 'only the colleague\'s alert was refused');
  log('all checks passed');
  process.stdout.write('PASSED\n');
} finally {
  await browser.close();
  closeSteps();
}
