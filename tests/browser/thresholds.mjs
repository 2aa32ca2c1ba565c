// Personal thresholds on the patient page in a real headless Chromium
// (Debian's package), driven by playwright-core. Started by
// tests/it/thresholds.rs, which runs the service on real PostgreSQL and
// checks the store afterwards.
//
// Carla (coordinator) proposes a looser fever threshold through the form;
// she sees her own proposal with a withdraw button only. Dirk (the second
// coordinator) approves it, then sets a stricter blood-pressure threshold,
// which applies at once. Any failed check throws, and the process exits
// non-zero with the reason; on success it prints PASSED.
//
// Environment: THUISWACHT_URL, THUISWACHT_PATIENT, THUISWACHT_PASSWORD_CARLA,
// THUISWACHT_PASSWORD_DIRK, THUISWACHT_REVIEW_BY (YYYY-MM-DD), SCREENSHOT_DIR,
// CHROMIUM (default /usr/bin/chromium).

import { join } from 'node:path';
import assert from 'node:assert/strict';
import { accessibility, launch, log, screenshots } from './harness.mjs';

const base = process.env.THUISWACHT_URL;
const patientId = process.env.THUISWACHT_PATIENT;
const reviewBy = process.env.THUISWACHT_REVIEW_BY;

const browser = await launch();

const consoleErrors = [];

async function signedIn(username, password) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'nl-NL' });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`${username}: ${message.text()}`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`${username}: ${String(error)}`));
  await page.goto(`${base}/patients/${patientId}`);
  await page.getByLabel('Gebruikersnaam').fill(username);
  await page.getByLabel('Wachtwoord').fill(password);
  await page.getByRole('button', { name: 'Inloggen' }).click();
  await page.waitForURL(`${base}/patients/${patientId}`);
  return page;
}

// Opens a rule's form, changes one field, and saves with a reason.
async function setThreshold(page, rule, field, value, reason) {
  const details = page.locator(`details.threshold-form[data-rule="${rule}"]`);
  await details.locator('summary').click();
  const form = details.locator('form.threshold-set');
  await form.locator(`[data-field="${field}"]`).fill(value);
  await form.locator('textarea[name="reason"]').fill(reason);
  await form.locator('input[name="review_by"]').fill(reviewBy);
  await details.screenshot({ path: join(screenshots, `threshold-form-${rule.replace('/', '-')}.png`) });
  await form.getByRole('button', { name: 'Opslaan' }).click();
}

try {
  // Carla proposes fever from 38.6: looser, so it waits.
  const carla = await signedIn('carla', process.env.THUISWACHT_PASSWORD_CARLA);
  await carla.getByRole('heading', { level: 2, name: 'Persoonlijke grens instellen' }).waitFor();
  await accessibility(carla, 'patient page with the threshold forms');
  await setThreshold(carla, 'default/fever', 'above', '38.6', 'Loopt warm, besproken met de huisarts.');
  await carla.locator('#threshold-status').getByText('Voorstel ingediend', { exact: false }).waitFor();
  const proposal = carla.locator('ul.proposals li[data-proposal]');
  await proposal.waitFor();
  await proposal.getByRole('button', { name: 'Intrekken' }).waitFor();
  assert.equal(await proposal.getByRole('button', { name: 'Goedkeuren' }).count(), 0, 'no approving one\'s own');
  log('carla proposed');

  // Dirk approves it.
  const dirk = await signedIn('dirk', process.env.THUISWACHT_PASSWORD_DIRK);
  const pending = dirk.locator('ul.proposals li[data-proposal]');
  await pending.getByLabel('Toelichting (optioneel)').fill('Akkoord.');
  await pending.getByRole('button', { name: 'Goedkeuren' }).click();
  await dirk.locator('#threshold-status').getByText('Gelukt.').waitFor();
  await dirk.getByText('Geen voorstellen die wachten.').waitFor();
  await dirk.locator('table.overrides tr.in-force').getByText('default/fever', { exact: false }).waitFor();
  log('dirk approved');

  // Dirk raises the blood-pressure limit: stricter, so at once.
  await setThreshold(dirk, 'default/hypotension', 'below', '95', 'Wordt snel duizelig, eerder bellen.');
  await dirk.locator('#threshold-status').getByText('Opgeslagen: geldt direct.').waitFor();
  await dirk.locator('table.overrides tr.in-force').getByText('default/hypotension', { exact: false }).waitFor();
  await accessibility(dirk, 'patient page after the changes');
  await dirk.screenshot({ path: join(screenshots, 'thresholds.png'), fullPage: true });
  log('dirk set a stricter threshold');

  assert.deepEqual(consoleErrors, [], 'the pages logged no errors (CSP refusals included)');
  process.stdout.write('PASSED\n');
} finally {
  await browser.close();
}
