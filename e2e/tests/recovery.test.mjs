/**
 * The lost-phone path (PRODUCT §7), clicked and typed in Chromium against the real `handoff
 * serve` with a real SMTP server (tests/smtp/server.py, aiosmtpd) that writes every mail it
 * accepts to a folder:
 *
 * Lin's only passkey is on her phone (an Android context with its own virtual
 * authenticator), and the phone is lost. On a laptop she types her email, chooses "Use
 * another method" (or lands on the alternatives when the laptop has no passkey for her),
 * "Email me a code", reads the code from the delivered mail, types it, and is signed in
 * with a recovery session: the account page says so and offers to create a passkey here.
 * She creates one (the laptop's virtual authenticator), then removes the lost phone's
 * passkey (a passkey check with the new one comes first) and signs the phone out.
 * Screenshots of each step are in e2e/artifacts/recovery-*.png.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ARTIFACTS, IDENTITIES, REPO_DIR, axeViolations, cdpIdToBase64url, freePort, launchBrowser, openPage, startServer } from '../lib/harness.mjs';

const IDENTIFIER = 'lin@example.com';

/** Start the test SMTP server; resolves once it listens. */
async function startSmtp() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handoff-mail-'));
  const child = spawn('/usr/bin/python3', [path.join(REPO_DIR, 'tests', 'smtp', 'server.py'), '--port', String(port), '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the SMTP server did not start (apt-get install python3-aiosmtpd)')), 10_000);
    child.stdout.on('data', (d) => {
      if (String(d).startsWith('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`the SMTP server exited (${code})`)));
  });
  return {
    port,
    mails: () =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.eml'))
        .sort()
        .map((f) => readFileSync(path.join(dir, f), 'utf8')),
    stop: () => {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('Lost phone: an email code, a new passkey here, the old one removed', { timeout: 240_000 }, () => {
  let smtp;
  let server;
  let browser;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    smtp = await startSmtp();
    server = await startServer({
      name: 'server-recovery',
      env: {
        HANDOFF_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
        HANDOFF_SMTP_ALLOW_PLAINTEXT: 'true',
        HANDOFF_MAIL_FROM: 'Handoff demo <login@example.com>',
      },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    smtp?.stop();
  });

  it('signs in by email code, adds a passkey on the laptop and removes the lost phone', async () => {
    // Before: the account's only passkey is on the phone.
    const phone = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, identity: IDENTITIES.androidPhone });
    await phone.page.goto(server.baseUrl);
    const signup = phone.page.getByRole('region', { name: 'Create an account' });
    await signup.getByLabel('Email or username').fill(IDENTIFIER);
    await signup.getByRole('button', { name: /Create account/ }).click();
    await phone.page.getByText(`Signed in as ${IDENTIFIER}`).first().waitFor({ timeout: 15_000 });
    const phoneCredential = cdpIdToBase64url((await phone.credentials())[0].credentialId);

    // The phone is lost. On the laptop:
    const laptop = await openPage(browser, { identity: IDENTITIES.windowsDesktop });
    const page = laptop.page;
    await laptop.presence(false); // the autofill list is ignored
    await page.goto(server.baseUrl);
    await page.locator('#identifier').fill(IDENTIFIER);
    await laptop.presence(true);
    await page.locator('#signin-continue').click();
    const other = page.getByRole('button', { name: 'Use another method' });
    const email = page.getByRole('button', { name: 'Email me a code' });
    await Promise.race([other.waitFor({ timeout: 20_000 }), email.waitFor({ timeout: 20_000 })]);
    await laptop.screenshot('recovery-1-laptop-use-your-phone');
    if (await other.isVisible()) await other.click();
    await email.waitFor({ timeout: 10_000 });
    await laptop.screenshot('recovery-2-other-ways');
    await email.click();

    await page.getByRole('heading', { name: 'Check your email' }).waitFor({ timeout: 10_000 });
    let mail;
    for (let i = 0; i < 100 && !mail; i++) {
      mail = smtp.mails()[0];
      if (!mail) await page.waitForTimeout(100);
    }
    assert.ok(mail, 'the code was mailed');
    assert.match(mail, new RegExp(`X-Envelope-To: ${IDENTIFIER}`));
    const code = mail.match(/(\d{6}) is your sign-in code/)[1];
    await page.locator('#email-code-delivery').getByText('The email was sent').waitFor({ timeout: 10_000 });
    await laptop.screenshot('recovery-3-check-your-email');
    // A wrong code first: the page says how many tries are left.
    await page.getByLabel('Code from the email').fill(code === '000000' ? '111111' : '000000');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.locator('#email-code-error').getByText('That code is not right. 4 tries left.').waitFor({ timeout: 10_000 });
    await page.getByLabel('Code from the email').fill(code);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    // A recovery session: the account says so and offers a passkey here.
    const banner = page.locator('#recovery-banner');
    await banner.getByText('You signed in without a passkey.').waitFor({ timeout: 10_000 });
    assert.match(await banner.innerText(), /You used a code from your email/);
    await laptop.screenshot('recovery-4-recovery-session');
    assert.deepEqual(await axeViolations(page), [], 'the account page has no accessibility violations');
    await banner.getByRole('button', { name: 'Create a passkey on this device' }).click();
    await page.locator('#passkey-list .passkey').nth(1).waitFor({ timeout: 15_000 });
    assert.equal((await laptop.credentials()).length, 1, 'the laptop now holds a passkey');
    await laptop.screenshot('recovery-5-two-passkeys');

    // Remove the lost phone's passkey: a passkey check with the new one comes first.
    const lost = page.locator(`#passkey-list .passkey[data-credential-id="${phoneCredential}"]`);
    await lost.locator('.passkey-delete').click();
    await page.locator('#delete-confirm').click();
    await page.locator('#status').getByText(/was deleted/).waitFor({ timeout: 15_000 });
    await page.locator('#passkey-list .passkey').nth(1).waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await lost.count(), 0, 'the phone passkey is gone');

    // And sign the lost phone out.
    const phoneSession = page.locator('#device-list li').filter({ hasText: 'Android' });
    await phoneSession.getByRole('button', { name: /^Sign out/ }).click();
    await page.locator('#status').getByText(/^Signed out/).waitFor({ timeout: 10_000 });
    await laptop.screenshot('recovery-6-phone-removed');
    const phoneNow = await phone.context.request.get(`${server.baseUrl}/api/v1/session`);
    assert.equal(phoneNow.status(), 401, 'the lost phone is signed out');
    assert.deepEqual(laptop.pageErrors, [], 'no script errors on the laptop');
    await phone.context.close();
    await laptop.context.close();
  });

  it('a browser without passkeys is offered QR approval and an email code, not a dead end', async () => {
    const old = await openPage(browser, { identity: IDENTITIES.windowsDesktop, authenticator: false });
    await old.context.addInitScript(() => {
      delete window.PublicKeyCredential;
    });
    const page = old.page;
    await page.goto(server.baseUrl);
    await page.locator('#unsupported').waitFor({ state: 'visible', timeout: 10_000 });
    await page.locator('#identifier').fill(IDENTIFIER);
    await page.locator('#signin-continue').click();
    await page.getByRole('heading', { name: "This browser can't use passkeys" }).waitFor({ timeout: 10_000 });
    for (const name of ['Sign in with your phone (QR)', 'Email me a code', 'Use a recovery code']) {
      assert.equal(await page.getByRole('button', { name }).isVisible(), true, `${name} is offered`);
    }
    await old.screenshot('recovery-7-no-passkeys-here');
    await page.getByRole('button', { name: 'Email me a code' }).click();
    await page.getByRole('heading', { name: 'Check your email' }).waitFor({ timeout: 10_000 });
    assert.deepEqual(old.pageErrors, [], 'no script errors');
    await old.context.close();
  });
});
