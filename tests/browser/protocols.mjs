// A coordinator tunes a threshold in a real headless Chromium: she changes
// the fever threshold on the protocol page, runs the preview on history and
// sees the difference, saves the change with a reason, and finds it in the
// version history with its comparison. Started by tests/it/browser.rs; the
// same STEP/DONE protocol as worklist.mjs.
//
// Environment: THUISWACHT_URL, THUISWACHT_USER, THUISWACHT_PASSWORD,
// EXPECT_CURRENT and EXPECT_PROPOSED (fever alerts in the period now and
// with the threshold at 38.5 °C), SCREENSHOT_DIR, CHROMIUM.

import { join } from 'node:path';
import assert from 'node:assert/strict';
import { accessibility, closeSteps, launch, log, screenshots, step } from './harness.mjs';

const base = process.env.THUISWACHT_URL;
const browser = await launch();

const consoleErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'nl-NL' });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));

  await page.goto(`${base}/protocols`);
  await page.getByLabel('Gebruikersnaam').fill(process.env.THUISWACHT_USER);
  await page.getByLabel('Wachtwoord').fill(process.env.THUISWACHT_PASSWORD);
  await page.getByRole('button', { name: 'Inloggen' }).click();
  await page.getByRole('heading', { level: 1, name: 'Protocollen' }).waitFor();
  await page.getByRole('link', { name: 'Kwetsbare ouderen thuis (standaard)' }).click();
  await page.getByRole('heading', { level: 2, name: 'Drempels aanpassen' }).waitFor();
  log('protocol page open');

  // Change the fever threshold from 38 to 38.5 and preview it.
  const fever = page.locator('fieldset[data-rule="fever"]');
  const above = fever.getByLabel('Boven');
  assert.equal(await above.inputValue(), '38');
  await above.fill('38.5');
  await fever.getByLabel('Hersteld bij').fill('38.2');
  await page.getByRole('button', { name: 'Bereken wat deze wijziging had gedaan' }).click();
  await page.locator('#preview-proposed').waitFor({ timeout: 30000 });
  assert.equal(await page.locator('#preview-current').textContent(), process.env.EXPECT_CURRENT);
  assert.equal(await page.locator('#preview-proposed').textContent(), process.env.EXPECT_PROPOSED);
  const removed = Number(process.env.EXPECT_CURRENT) - Number(process.env.EXPECT_PROPOSED);
  assert.equal(await page.locator('#preview-removed').textContent(), String(removed));
  await page.getByRole('table', { name: 'Per regel' }).getByRole('rowheader', { name: 'default/fever' }).waitFor();
  log('preview shows the difference');
  await accessibility(page, 'protocol page with a preview');
  await page.screenshot({ path: join(screenshots, 'protocol-preview.png'), fullPage: true });

  // Save with a reason; the new version is in the history with its comparison.
  await page.getByLabel('Reden van de wijziging').fill('Minder koortsmeldingen, afgesproken met de huisartsen');
  await page.getByRole('button', { name: 'Opslaan als nieuwe versie' }).click();
  await page.waitForURL(/\/protocols\/default\?compare=1$/);
  await page.getByRole('heading', { level: 2, name: 'Verschil van versie 0 naar 1' }).waitFor();
  const comparison = page.locator('table.comparison');
  await comparison.getByRole('row', { name: /fever above 38 38\.5/ }).waitFor();
  const history = page.locator('table.versions tr[data-version="1"]');
  await history.getByText('Minder koortsmeldingen, afgesproken met de huisartsen').waitFor();
  assert.equal(await page.locator('fieldset[data-rule="fever"]').getByLabel('Boven').inputValue(), '38.5');
  log('saved as version 1');
  await page.screenshot({ path: join(screenshots, 'protocol-saved.png'), fullPage: true });
  await step('check-saved');

  assert.deepEqual(consoleErrors, [], 'the pages logged no errors (CSP refusals included)');
  log('all checks passed');
  process.stdout.write('PASSED\n');
} finally {
  await browser.close();
  closeSteps();
}
