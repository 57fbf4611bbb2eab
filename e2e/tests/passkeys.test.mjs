/**
 * The demo page at `/`, driven like a person would: sign up, see where the
 * passkey lives, sign out, sign in identifier-first, sign in through autofill,
 * add and delete passkeys — against the real `handoff serve` and Chromium with
 * a virtual authenticator.
 *
 * The steps share one server, one browser context and one authenticator, so
 * they run in order; each step starts from the state the previous one left.
 *
 * About Chromium's virtual authenticator (checked by hand on Chromium 156):
 * it never draws the autofill list. A conditional-mediation request is
 * answered at once, without any focus, when automatic presence simulation is
 * on; with it off the request stays pending (as if the user had not picked a
 * passkey yet), and turning it back on does not complete a request that is
 * already pending. With no credential at all, the request is rejected with
 * NotAllowedError. The steps below switch presence on and off to model
 * "the user picked the passkey" / "the user ignored the autofill list".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { axeViolations, cdpIdToBase64url, launchBrowser, openPage, startServer } from '../lib/harness.mjs';

const IDENTIFIER = 'ada@example.com';
const DISPLAY_NAME = 'Ada Lovelace';
// The AAGUID Chromium's virtual authenticators report, named through a community-format list.
const VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';
const PROVIDER_NAME = 'Test Passkey Vault';
const ICON_LIGHT =
  "data:image/svg+xml;base64," +
  Buffer.from("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><circle cx='5' cy='5' r='4' fill='#0b57d0'/></svg>").toString('base64');
const ICON_DARK =
  "data:image/svg+xml;base64," +
  Buffer.from("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><circle cx='5' cy='5' r='4' fill='#a8c7fa'/></svg>").toString('base64');

describe('demo page: passkeys on this device', { timeout: 180_000 }, () => {
  let server;
  let browser;
  let t; // the page and its virtual authenticator
  let listDir;

  before(async () => {
    listDir = mkdtempSync(path.join(os.tmpdir(), 'handoff-aaguids-'));
    const list = path.join(listDir, 'aaguids.json');
    writeFileSync(list, JSON.stringify({ [VIRTUAL_AAGUID]: { name: PROVIDER_NAME, icon_light: ICON_LIGHT, icon_dark: ICON_DARK } }));
    server = await startServer({ name: 'server-passkeys', env: { HANDOFF_AAGUID_LIST: list } });
    browser = await launchBrowser();
    // A synced platform passkey provider (BE=1, BS=1), like iCloud Keychain or Google Password Manager.
    t = await openPage(browser, { authenticator: { defaultBackupEligibility: true, defaultBackupState: true } });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (listDir) rmSync(listDir, { recursive: true, force: true });
  });

  const status = () => t.page.locator('#status');
  const passkeyItems = () => t.page.locator('#passkey-list > li');

  /** Sign out while the user ignores the autofill list: presence stays off until the page's new
   * conditional request is pending, then comes back on for whatever the user does next. */
  async function signOutIgnoringAutofill() {
    await t.presence(false);
    const before = await t.conditionalRequests();
    await signOut();
    await t.waitForConditionalRequest(before);
    await t.presence(true);
  }

  async function signOut() {
    await t.page.click('#signout');
    await t.page.locator('#signin-title').waitFor({ state: 'visible' });
    await assertText(status(), 'You are signed out.');
    assert.equal(await t.page.locator('#account').isVisible(), false, 'account view is hidden after sign-out');
  }

  async function assertText(locator, expected, timeout = 10_000) {
    await locator.filter({ hasText: expected }).first().waitFor({ state: 'visible', timeout });
    const text = await locator.innerText();
    assert.ok(text.includes(expected), `expected "${expected}" in "${text}"`);
  }

  it('(a) signs up through the page and lists the passkey with where it lives', async () => {
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    assert.equal(await page.title(), 'Handoff — sign in with a passkey');
    // Labels a person reads, tied to the inputs.
    await page.getByLabel('Email or username').first().waitFor();
    assert.equal(await page.locator('#identifier').getAttribute('autocomplete'), 'username webauthn');
    assert.equal(await page.getByRole('heading', { name: 'Create an account' }).isVisible(), true);
    assert.deepEqual(await axeViolations(page), [], 'axe finds no WCAG A/AA problems on the sign-in page');
    await t.screenshot('01-signed-out-desktop');

    await page.fill('#signup-identifier', IDENTIFIER);
    await page.fill('#signup-name', DISPLAY_NAME);
    await t.screenshot('02-sign-up-form-filled');
    await page.click('#signup-submit');

    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(status(), 'Account created.');
    assert.equal(await page.locator('#account-identifier').innerText(), IDENTIFIER);
    await assertText(page.locator('#account'), `Signed in as ${IDENTIFIER}`);
    await assertText(page.locator('#account'), DISPLAY_NAME);

    // The authenticator really holds a discoverable credential for this site…
    const creds = await t.credentials();
    assert.equal(creds.length, 1, 'one credential on the virtual authenticator');
    assert.equal(creds[0].isResidentCredential, true, 'the passkey is discoverable');
    assert.equal(creds[0].rpId, 'localhost');
    const credentialId = cdpIdToBase64url(creds[0].credentialId);

    // …and the page lists exactly that passkey, with where it lives.
    assert.equal(await passkeyItems().count(), 1);
    const item = passkeyItems().first();
    assert.equal(await item.getAttribute('data-credential-id'), credentialId);
    const text = await item.innerText();
    for (const expected of [
      'Synced', // BE=1, BS=1 on this authenticator
      'Backed up and synced',
      'Built into the device', // authenticatorAttachment=platform
      'this device', // transport "internal"
      'Created',
      'Not used to sign in yet',
      'Delete',
    ]) {
      assert.ok(text.includes(expected), `passkey card shows "${expected}":\n${text}`);
    }
    // Created on this browser: the server parsed the User-Agent (Chromium on Linux, a desktop).
    assert.match(text, /Linux/, `created-on shows the OS:\n${text}`);
    assert.match(text, /Chrom/i, `created-on shows the browser:\n${text}`);
    // Provider: the name and icon from the operator's AAGUID list (light icon in a light theme).
    assert.equal((await item.locator('.passkey-name').innerText()).trim(), PROVIDER_NAME);
    assert.equal(await item.locator('.passkey-icon img').getAttribute('src'), ICON_LIGHT);
    assert.ok(await item.locator('.passkey-icon img').evaluate((img) => img.complete && img.naturalWidth > 0), 'icon renders');
    await assertText(status(), `Your passkey is saved in ${PROVIDER_NAME}.`);

    // The registration request carried the W3C JSON with transports and attachment.
    const finish = t.apiCalls.find((c) => c.path === '/api/v1/passkeys/registration/finish');
    assert.ok(finish, 'registration/finish was called');
    assert.equal(finish.body.credential.id, credentialId);
    assert.deepEqual(finish.body.credential.response.transports, ['internal']);
    assert.equal(finish.body.credential.authenticatorAttachment, 'platform');
    assert.equal(typeof finish.body.credential.response.attestationObject, 'string');

    assert.deepEqual(await axeViolations(page), [], 'axe finds no WCAG A/AA problems in the account view');
    await t.screenshot('03-account-desktop');
  });

  it('(b) signs out, then signs in identifier-first with the Continue button', async () => {
    const { page } = t;
    // The user ignores the autofill list: with presence off, the page's conditional request stays pending.
    await signOutIgnoringAutofill();
    await t.screenshot('04-signed-out-after-sign-out');
    assert.equal(await page.locator('#account').isVisible(), false);
    // The signed-out page still knows nobody is signed in.
    const session = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    assert.equal(session, 401, 'GET /session is 401 after signing out');

    const before = (await t.credentials())[0].signCount;
    const callsBefore = t.apiCalls.length;
    await page.fill('#identifier', IDENTIFIER);
    await page.click('#signin-continue');

    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(status(), 'Signed in. Welcome back!');
    assert.equal(await page.locator('#account-identifier').innerText(), IDENTIFIER);
    assert.ok((await t.credentials())[0].signCount > before, 'the authenticator signed an assertion');

    // The identifier-first request and what the SDK told the server about this browser.
    const start = t.apiCalls.slice(callsBefore).find((c) => c.path === '/api/v1/login/start' && c.body?.identifier);
    assert.ok(start, 'login/start was called with the identifier');
    assert.equal(start.body.identifier, IDENTIFIER);
    assert.match(start.body.client.userAgent, /Chrom/);
    assert.equal(start.body.client.platformAuthenticator, true);
    assert.equal(start.body.client.conditionalMediation, true);
    assert.equal(start.body.client.lastCredentialId, await passkeyItems().first().getAttribute('data-credential-id'));
    assert.equal(typeof start.body.client.capabilities, 'object');
    const modalGets = (await page.evaluate(() => window.__webauthnCalls)).filter((c) => c.op === 'get');
    assert.equal(modalGets.at(-1).mediation, 'optional', 'the Continue button used a modal (not autofill) request');

    // The list now shows when and where the passkey was last used.
    const text = await passkeyItems().first().innerText();
    assert.ok(!text.includes('Not used to sign in yet'), `last used is filled in:\n${text}`);
    assert.match(text, /Last used[\s\S]*Linux/, `last used shows the device:\n${text}`);
  });

  it('(c) signs in through autofill (conditional mediation) on a fresh visit', async () => {
    const { page } = t;
    await signOutIgnoringAutofill();
    assert.equal(await page.locator('#signin-title').isVisible(), true, 'still signed out: the autofill was ignored');

    // A fresh visit: the page starts a usernameless conditional request on load. The user focuses
    // the field to pick their passkey; Chromium's virtual authenticator answers the request without
    // drawing the list (see the note at the top), so the focus is what a person does, not what
    // triggers it.
    const callsBefore = t.apiCalls.length;
    await page.goto(server.baseUrl);
    await page.focus('#identifier').catch(() => {}); // the field may already be gone if signed in
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(status(), 'Signed in with your passkey.');
    assert.equal(await page.locator('#account-identifier').innerText(), IDENTIFIER);

    const calls = await page.evaluate(() => window.__webauthnCalls);
    assert.deepEqual(
      calls.filter((c) => c.op === 'get').map((c) => c.mediation),
      ['conditional'],
      'exactly one WebAuthn request on this visit, and it was the autofill (conditional) one',
    );
    const starts = t.apiCalls.slice(callsBefore).filter((c) => c.path === '/api/v1/login/start');
    assert.equal(starts.length, 1);
    assert.equal(starts[0].body.identifier, undefined, 'autofill sign-in is usernameless');
    assert.ok(t.apiCalls.slice(callsBefore).some((c) => c.path === '/api/v1/login/finish'));
  });

  it('adds a security-key passkey with "Add a passkey on this device"', async () => {
    const { page } = t;
    // A USB security key: cross-platform and device-bound (BE=0). The platform authenticator stays
    // silent (presence off), so the new passkey lands on the key.
    const key = await t.addAuthenticator({ transport: 'usb' });
    await t.presence(false);
    await page.click('#add-passkey');
    await page.locator('#passkey-list > li').nth(1).waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(status(), 'Passkey added.');
    assert.equal(await passkeyItems().count(), 2);
    const onKey = await t.credentials(key);
    assert.equal(onKey.length, 1, 'the new credential is on the security key');
    const card = page.locator(`#passkey-list > li[data-credential-id="${cdpIdToBase64url(onKey[0].credentialId)}"]`);
    const text = await card.innerText();
    for (const expected of ['Device-bound', 'Lives only on this authenticator', 'Separate device', 'USB']) {
      assert.ok(text.includes(expected), `the security-key passkey shows "${expected}":\n${text}`);
    }
    await t.presence(true);
    await t.screenshot('05-account-two-passkeys');
    t.keyAuthenticator = key;
  });

  it('(d) deletes a passkey after confirming, and the authenticator is told', async () => {
    const { page } = t;
    const before = await passkeyItems().count();
    assert.ok(before >= 1);
    const item = passkeyItems().first();
    const credentialId = await item.getAttribute('data-credential-id');

    const dialog = page.locator('#delete-dialog');
    const lastWarning = page.locator('#delete-last');

    // Cancel first: nothing changes.
    await item.getByRole('button', { name: /Delete/ }).click();
    await dialog.waitFor({ state: 'visible' });
    await assertText(dialog, 'Delete this passkey?');
    assert.equal(await lastWarning.isVisible(), before === 1, 'the "only passkey" warning shows only for the last one');
    await t.screenshot('06-delete-confirmation');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await passkeyItems().count(), before, 'cancel keeps the passkey');

    // Confirm.
    await item.getByRole('button', { name: /Delete/ }).click();
    await dialog.waitFor({ state: 'visible' });
    await page.click('#delete-confirm');
    await assertText(status(), 'deleted.');
    await page.waitForFunction(
      (id) => !document.querySelector(`#passkey-list > li[data-credential-id="${id}"]`),
      credentialId,
    );
    assert.equal(await passkeyItems().count(), before - 1);

    // The server no longer has it…
    const listed = await page.evaluate(async () => (await (await fetch('/api/v1/passkeys')).json()).passkeys);
    assert.ok(!listed.some((p) => p.credentialId === credentialId), 'GET /passkeys no longer lists it');
    assert.equal(listed.length, before - 1);
    // …and the page told the browser (WebAuthn Signal API), so the provider stops offering it:
    // Chromium's virtual authenticator removes the credential.
    const all = [...(await t.credentials()), ...(t.keyAuthenticator ? await t.credentials(t.keyAuthenticator) : [])];
    assert.ok(!all.some((c) => cdpIdToBase64url(c.credentialId) === credentialId), 'credential gone from the authenticator');

    // Deleting the last passkey warns first, then shows the empty state.
    if ((await passkeyItems().count()) === 1) {
      await passkeyItems().first().getByRole('button', { name: /Delete/ }).click();
      await dialog.waitFor({ state: 'visible' });
      await assertText(lastWarning, 'This is the only passkey on this account.');
      await page.click('#delete-confirm');
      await page.locator('#passkey-empty').waitFor({ state: 'visible' });
      await assertText(page.locator('#passkey-empty'), 'no passkeys left');
      assert.equal(await passkeyItems().count(), 0);
      await t.screenshot('07-account-no-passkeys');
    }
  });

  it('explains failures in plain language', async () => {
    const { page } = t;
    await signOut(); // the authenticators hold no credential any more, so autofill finds nothing
    // Taken identifier.
    await page.fill('#signup-identifier', IDENTIFIER);
    await page.click('#signup-submit');
    await assertText(status(), 'already has an account');
    assert.equal(await page.locator('#account').isVisible(), false);
    // An identifier with no account here: the server answers like for any account whose
    // passkey is elsewhere (it does not reveal which accounts exist), and the page offers the
    // other ways to sign in instead of a dead end — whether it tried a passkey first or not.
    await page.fill('#identifier', 'nobody@example.com');
    await page.click('#signin-continue');
    const alternative = page.locator('#alternative');
    await alternative.waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(alternative, 'Other ways to sign in');
    await assertText(alternative, 'Sign in on the device that has your passkey');
    assert.match(await page.locator('#alternative-title').innerText(), /Passkey sign-in (didn't work|isn't available) here/);
    assert.equal(await page.locator('#account').isVisible(), false);
    await page.getByRole('button', { name: 'Use a different account' }).click();
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    // Empty identifier: a field error tied to the input.
    await page.fill('#identifier', '');
    await page.click('#signin-continue');
    await assertText(page.locator('#identifier-error'), 'Enter your email or username.');
    assert.equal(await page.locator('#identifier').getAttribute('aria-invalid'), 'true');
    await t.screenshot('08-errors');
  });

  it('ran without script errors', () => {
    assert.deepEqual(t.pageErrors, [], 'no uncaught exceptions on the page');
  });
});
