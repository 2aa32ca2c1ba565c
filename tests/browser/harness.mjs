// What the browser tests share: the log, the STEP/DONE handshake with the
// Rust side, the axe-core check and Chromium itself.
//
// Handshake: a script prints `STEP <name>` on stdout and waits for a line
// `DONE <name>` on stdin before going on.

import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const screenshots = process.env.SCREENSHOT_DIR ?? 'target/browser-screenshots';
mkdirSync(screenshots, { recursive: true });

export function log(message) {
  process.stderr.write(`browser: ${message}\n`);
}

let lines = null;
let stdinLines = null;

/** Asks the Rust side to do `name` and waits until it has. */
export async function step(name) {
  if (!lines) {
    stdinLines = createInterface({ input: process.stdin });
    lines = stdinLines[Symbol.asyncIterator]();
  }
  process.stdout.write(`STEP ${name}\n`);
  const { value, done } = await lines.next();
  assert.ok(!done, `stdin closed while waiting for ${name}`);
  assert.equal(value.trim(), `DONE ${name}`);
}

/** Stops reading stdin, so that the process can end. */
export function closeSteps() {
  stdinLines?.close();
}

/**
 * axe-core in the page, run through the DevTools protocol (the page's CSP
 * forbids inline scripts, and the tests do not weaken it). Fails on a
 * serious or critical violation; logs the others.
 */
export async function accessibility(page, what) {
  await page.evaluate(axeSource);
  const results = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const outcome = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return outcome.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.slice(0, 3).map((node) => node.target.join(' ')),
    }));
  });
  for (const violation of results) {
    log(`${what}: axe ${violation.impact} ${violation.id}: ${violation.help} at ${violation.nodes.join(', ')}`);
  }
  const serious = results.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  assert.deepEqual(serious, [], `${what} has serious or critical accessibility violations`);
}

/** Debian's Chromium, headless. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
