/**
 * Device sign-in (RFC 8628) end to end: the terminal demo `handoff device-login --client
 * demo-tv` plays the TV against the real `handoff serve`, and a phone (Chromium with a
 * virtual authenticator, Android identity) approves.
 *
 * (a) The QR the demo prints in the terminal (Unicode half blocks) is drawn as a terminal
 *     draws it (light modules on a dark background) on a canvas, screenshotted and decoded
 *     with zbarimg: it holds the demo's verification link. The signed-in phone opens it, sees
 *     the application's name, the device's address and the consent-phishing warning, picks
 *     the code the terminal shows among three and approves; the demo exits 0 and prints the
 *     ID token's claims (checked against the server's keys), `amr` saying another device
 *     approved.
 * (b) The phone types the code of a second run on the verification page and denies: the demo
 *     hears `access_denied` and exits 1.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ARTIFACTS, IDENTITIES, axeViolations, launchBrowser, openPage, serverBinary, startServer } from '../lib/harness.mjs';

const PHONE_IDENTIFIER = 'tess@example.com';
const TV_NAME = 'Living-room TV (demo)';

/** Decode the QR in a PNG with zbarimg; returns the text it holds. */
function zbar(file) {
  try {
    return execFileSync('zbarimg', ['--raw', '-q', file], { encoding: 'utf8' }).trim();
  } catch (error) {
    if (error.code === 'ENOENT') throw new Error('zbarimg is missing: apt-get install -y zbar-tools');
    throw new Error(`zbarimg could not decode ${file} (exit ${error.status})`);
  }
}

/**
 * Start `handoff device-login` against `server`; resolves once it has printed its link.
 * @returns {Promise<{stderr: () => string, link: string, code: string, qr: string, done: Promise<{code: number, stdout: string}>}>}
 */
function deviceLogin(server, name) {
  const child = spawn(serverBinary(), ['device-login', '--url', server.baseUrl, '--client', 'demo-tv'], {
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) =>
    child.on('exit', (code) => {
      mkdirSync(ARTIFACTS, { recursive: true });
      writeFileSync(path.join(ARTIFACTS, `${name}.log`), `${stderr}\n--- stdout ---\n${stdout}`);
      resolve({ code, stdout });
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`device-login printed no link in 15 s:\n${stderr}`)), 15_000);
    child.stderr.on('data', () => {
      const link = stderr.match(/^Link: (\S+)$/m)?.[1];
      if (!link) return;
      clearTimeout(timer);
      const lines = stderr.split('\n');
      const first = lines.findIndex((l) => /[█▀▄]/.test(l));
      const last = lines.findIndex((l, i) => i > first && !/[█▀▄]/.test(l) && l.trim() === '');
      const qr = lines.slice(first, last).join('\n');
      const code = stderr.match(/\b([B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4})\b/)?.[1];
      resolve({ stderr: () => stderr, link, code, qr, done });
    });
  });
}

describe('Device sign-in: the terminal demo signs in with a phone', { timeout: 240_000 }, () => {
  let server;
  let browser;
  let phone;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServer({ name: 'server-device' });
    browser = await launchBrowser();
    phone = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, identity: IDENTITIES.androidPhone });
    await phone.page.goto(server.baseUrl);
    const signup = phone.page.getByRole('region', { name: 'Create an account' });
    await signup.getByLabel('Email or username').fill(PHONE_IDENTIFIER);
    await signup.getByRole('button', { name: /Create account/ }).click();
    await phone.page.getByText(`Signed in as ${PHONE_IDENTIFIER}`).first().waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('(a) the phone scans the terminal QR, picks the code and approves; the demo prints the claims', async () => {
    const tv = await deviceLogin(server, 'device-login-a');
    assert.match(tv.code ?? '', /^[A-Z]{4}-[A-Z]{4}$/, `the terminal shows a code:\n${tv.stderr()}`);
    assert.equal(tv.link, `${server.baseUrl}/device?user_code=${tv.code}`);

    // Draw the terminal's QR as a dark terminal shows it, and read it back with zbarimg.
    const screen = await browser.newPage({ viewport: { width: 800, height: 800 } });
    await screen.setContent('<canvas id="t"></canvas>');
    await screen.evaluate((text) => {
      const rows = text.split('\n');
      const cell = 6;
      const canvas = document.getElementById('t');
      canvas.width = Math.max(...rows.map((r) => [...r].length)) * cell;
      canvas.height = rows.length * 2 * cell;
      const g = canvas.getContext('2d');
      g.fillStyle = '#000';
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.fillStyle = '#eee';
      rows.forEach((row, y) =>
        [...row].forEach((ch, x) => {
          if (ch === '█' || ch === '▀') g.fillRect(x * cell, y * 2 * cell, cell, cell);
          if (ch === '█' || ch === '▄') g.fillRect(x * cell, (y * 2 + 1) * cell, cell, cell);
        }),
      );
    }, tv.qr);
    const file = path.join(ARTIFACTS, 'device-a1-terminal-qr.png');
    await screen.locator('#t').screenshot({ path: file });
    await screen.close();
    assert.equal(zbar(file), tv.link, 'the terminal QR holds the verification link');

    const p = phone.page;
    await p.goto(tv.link);
    await p.getByRole('heading', { name: `Sign in to ${TV_NAME} on a device?` }).waitFor({ timeout: 10_000 });
    const confirm = p.locator('#confirm');
    assert.match(await confirm.innerText(), /Only approve a device in front of you that you just started signing in on/);
    assert.match(await p.locator('#req-ip').innerText(), /127\.0\.0\.1/);
    const choices = await p.getByRole('radio').count();
    assert.equal(choices, 3, 'a scanned code is picked among three');
    await phone.screenshot('device-a2-phone-confirm');
    assert.deepEqual(await axeViolations(p), [], 'the confirmation has no accessibility violations');
    await p.getByRole('radio', { name: tv.code, exact: true }).check();
    await p.getByRole('button', { name: 'Approve' }).click();
    await p.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });
    await phone.screenshot('device-a3-phone-approved');

    const { code, stdout } = await tv.done;
    assert.equal(code, 0, `device-login succeeded:\n${tv.stderr()}`);
    const claims = JSON.parse(stdout);
    assert.equal(claims.iss, server.baseUrl);
    assert.equal(claims.aud, 'demo-tv');
    assert.equal(claims.preferred_username, PHONE_IDENTIFIER);
    assert.deepEqual(claims.amr, ['pop', 'mca'], 'approved from another device');
    assert.match(tv.stderr(), /Signed in\. The ID token verifies/);
    assert.deepEqual(phone.pageErrors, [], 'no script errors on the phone');
  });

  it('(b) the phone types the code and denies; the demo says so and fails', async () => {
    const tv = await deviceLogin(server, 'device-login-b');
    const p = phone.page;
    await p.goto(`${server.baseUrl}/device`);
    await p.getByRole('heading', { name: 'Sign in on a device' }).waitFor({ timeout: 10_000 });
    await p.getByLabel('Code').fill(tv.code.toLowerCase().replace('-', ' '));
    await p.getByRole('button', { name: 'Continue' }).click();
    await p.getByRole('heading', { name: `Sign in to ${TV_NAME} on a device?` }).waitFor({ timeout: 10_000 });
    assert.equal(await p.getByRole('radio').count(), 0, 'typing the code was the confirmation');
    await phone.screenshot('device-b1-phone-typed');
    await p.getByRole('button', { name: 'Deny' }).click();
    await p.getByRole('heading', { name: 'Sign-in denied' }).waitFor({ timeout: 10_000 });
    const { code, stdout } = await tv.done;
    assert.equal(code, 1, `device-login failed:\n${tv.stderr()}`);
    assert.equal(stdout, '', 'no claims');
    assert.match(tv.stderr(), /the sign-in was denied/);
  });
});
