/**
 * Cross-device sign-in (the browser's hybrid QR flow) and passkey append, driven like a
 * person would on two devices:
 *
 * - a phone (Chrome on Android: mobile User-Agent and Client Hints) creates the account and
 *   its passkey, on a virtual authenticator with transport `hybrid` and BE/BS set;
 * - a desktop (Chrome on Windows, a platform authenticator with no passkey for this site)
 *   enters the identifier, gets the cross-device explainer, continues, and the ceremony is
 *   answered by a virtual `hybrid` authenticator holding the phone's credential — that
 *   authenticator stands in for the phone reached over Bluetooth + the QR code;
 * - after the sign-in the desktop accepts the offer to create a passkey here, and the next
 *   sign-in there is decided `local`.
 * A second run has the phone refuse (user not verified): the page offers the next
 * alternative instead of a dead end, and after two failures the server stops offering
 * passkeys in that browser.
 *
 * About `hybridTransport`: headless Chromium on this machine reports
 * `PublicKeyCredential.getClientCapabilities().hybridTransport === false` (there is no
 * Bluetooth, and a virtual `hybrid` authenticator does not change it). The server rightly
 * refuses the cross-device flow then — the last test checks exactly that. To stand in for a
 * Bluetooth-capable desktop, the desktop contexts of the other runs override
 * `getClientCapabilities` in an init script to report `hybridTransport: true`; every other
 * capability is the browser's own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IDENTITIES, axeViolations, cdpIdToBase64url, launchBrowser, openPage, startServer } from '../lib/harness.mjs';

const IDENTIFIER = 'grace@example.com';
const REFUSED_IDENTIFIER = 'alan@example.com';
const SKIP_IDENTIFIER = 'katherine@example.com';

/** Stand-in for a desktop with Bluetooth: the browser's capabilities, with hybridTransport on. */
function reportHybridTransport() {
  const PKC = window.PublicKeyCredential;
  if (typeof PKC?.getClientCapabilities !== 'function') return;
  const original = PKC.getClientCapabilities.bind(PKC);
  PKC.getClientCapabilities = async () => ({ ...(await original()), hybridTransport: true });
}

describe('cross-device sign-in with a phone, then a passkey on the desktop', { timeout: 240_000 }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ name: 'server-cross-device' });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function noSidewaysScroll(page) {
    const { scrollWidth, clientWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
    assert.ok(scrollWidth <= clientWidth, `page is ${scrollWidth}px wide in a ${clientWidth}px viewport`);
  }

  async function assertText(locator, expected, timeout = 10_000) {
    await locator.filter({ hasText: expected }).first().waitFor({ state: 'visible', timeout });
    const text = await locator.innerText();
    assert.ok(text.includes(expected), `expected "${expected}" in "${text}"`);
  }

  /** Create the account on a phone; returns the phone's credential as DevTools gives it. */
  async function signUpOnPhone(identifier) {
    const phone = await openPage(browser, {
      viewport: { width: 390, height: 844 },
      isMobile: true,
      identity: IDENTITIES.androidPhone,
      authenticator: { transport: 'hybrid', defaultBackupEligibility: true, defaultBackupState: true },
    });
    await phone.page.goto(server.baseUrl);
    const ua = await phone.page.evaluate(async () => ({
      ua: navigator.userAgent,
      hints: await navigator.userAgentData.getHighEntropyValues(['platform', 'mobile']),
    }));
    assert.match(ua.ua, /Android 14/);
    assert.equal(ua.hints.platform, 'Android');
    assert.equal(ua.hints.mobile, true);
    await phone.page.fill('#signup-identifier', identifier);
    await phone.page.click('#signup-submit');
    await phone.page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(phone.page.locator('#status'), 'Account created.');
    // Where the passkey lives, as the server recorded it: made on an Android phone.
    await assertText(phone.page.locator('#passkey-list'), 'Android');
    await assertText(phone.page.locator('#passkey-list'), 'phone');
    const creds = await phone.credentials();
    assert.equal(creds.length, 1, 'the phone authenticator holds the passkey');
    assert.equal(creds[0].isResidentCredential, true);
    const finish = phone.apiCalls.find((c) => c.path === '/api/v1/passkeys/registration/finish');
    assert.ok(finish.body.credential.response.transports.includes('hybrid'), 'registered with transport hybrid');
    assert.equal(phone.pageErrors.length, 0, phone.pageErrors.join('\n'));
    await phone.context.close();
    return creds[0];
  }

  /**
   * A Windows desktop: a platform authenticator (Windows Hello) with no passkey for this site,
   * and a `hybrid` authenticator holding the phone's credential — the phone, reached over the
   * cross-device flow. Presence on the "phone" stays off until the person continues, so the
   * page's autofill request cannot be answered by it.
   */
  async function openDesktop(phoneCredential, { phoneVerifiesUser = true, bluetooth = true } = {}) {
    const desktop = await openPage(browser, { identity: IDENTITIES.windowsDesktop });
    if (bluetooth) await desktop.context.addInitScript(reportHybridTransport);
    const phoneId = await desktop.addAuthenticator({
      transport: 'hybrid',
      isUserVerified: phoneVerifiesUser,
      automaticPresenceSimulation: false,
    });
    await desktop.cdp.send('WebAuthn.addCredential', { authenticatorId: phoneId, credential: phoneCredential });
    desktop.phoneId = phoneId;
    return desktop;
  }

  /**
   * An identifier-first /login/start response (not the usernameless one the page's autofill
   * request may be sending at the same moment).
   */
  function identifierStart(response) {
    if (!response.url().endsWith('/api/v1/login/start') || response.request().method() !== 'POST') return false;
    try {
      return typeof response.request().postDataJSON()?.identifier === 'string';
    } catch {
      return false;
    }
  }

  /** Type the identifier and press Continue; returns the /login/start response body. */
  async function enterIdentifier(t, identifier) {
    await t.page.fill('#identifier', identifier);
    const response = t.page.waitForResponse(identifierStart);
    await t.page.click('#signin-continue');
    const res = await response;
    assert.equal(res.status(), 200);
    return { body: await res.json(), request: res.request() };
  }

  let phoneCredential;

  it('signs up on the phone, signs in on the desktop through the phone, and appends a passkey there', async () => {
    phoneCredential = await signUpOnPhone(IDENTIFIER);
    const phoneCredentialId = cdpIdToBase64url(phoneCredential.credentialId);
    const t = await openDesktop(phoneCredential);
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    assert.equal((await t.credentials()).length, 0, 'no passkey for this site on the desktop itself');

    // Identifier first → the server's decision.
    const { body: start, request } = await enterIdentifier(t, IDENTIFIER);
    const headers = await request.allHeaders();
    assert.equal(headers['sec-ch-ua-platform'], '"Windows"');
    assert.equal(headers['sec-ch-ua-mobile'], '?0');
    const client = request.postDataJSON().client;
    assert.equal(client.userAgentData.platform, 'Windows');
    assert.equal(client.userAgentData.mobile, false);
    assert.equal(client.capabilities.hybridTransport, true, 'the stand-in for a Bluetooth desktop');
    assert.equal(client.platformAuthenticator, true, 'Windows Hello is there');
    assert.equal(client.lastCredentialId, undefined, 'this browser has not used a passkey here');

    assert.equal(start.decision.verdict, 'cross-device', JSON.stringify(start.decision));
    assert.deepEqual(start.publicKey.hints, ['hybrid']);
    const allowed = start.publicKey.allowCredentials.find((c) => c.id === phoneCredentialId);
    assert.ok(allowed, 'the phone passkey is allowed');
    assert.ok(allowed.transports.includes('hybrid'), `transports ${allowed.transports}`);
    assert.ok(start.decision.reasons.some((r) => r.code !== 'static-default'), 'the decision has real reasons');

    // The explainer shows before any OS dialog opens.
    const explainer = page.locator('#cross-device');
    await explainer.waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => window.__webauthnCalls.filter((c) => c.mediation !== 'conditional').length), 0, 'no dialog yet');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'cross-device-title', 'focus moved to the heading');
    await assertText(explainer, 'Sign in with your phone');
    await assertText(explainer, "your computer will show a QR code — scan it with your phone's camera");
    await assertText(explainer, 'Bluetooth must be on on both devices, and both need internet.');
    await assertText(explainer, IDENTIFIER);
    assert.match(await page.locator('#cross-device-timer').innerText(), /This request stays open for \d+:\d\d\./);
    assert.equal(await page.getByRole('button', { name: 'Continue' }).isVisible(), true);
    assert.equal(await page.getByRole('button', { name: 'Use another method' }).isVisible(), true);
    // "Why am I seeing this?" opens the server's reasons.
    await explainer.getByText('Why am I seeing this?').click();
    await assertText(page.locator('#cross-device-reasons'), 'So the server suggested your phone (QR code)');
    assert.deepEqual(await axeViolations(page), [], 'axe finds no problems on the cross-device screen');
    await t.screenshot('cross-device-01-explainer');

    // Continue: the "phone" answers over hybrid.
    await t.presence(true, t.phoneId);
    const signCount = (await t.credentials(t.phoneId))[0].signCount;
    const finished = page.waitForResponse((r) => r.url().endsWith('/api/v1/login/finish'));
    await page.getByRole('button', { name: 'Continue' }).click();
    const finish = await (await finished).json();
    assert.equal(finish.flow, 'cross-device');
    assert.ok(finish.appendOffer, `login/finish offers a passkey here: ${JSON.stringify(finish)}`);
    assert.ok((await t.credentials(t.phoneId))[0].signCount > signCount, 'the hybrid authenticator signed');
    const sent = t.apiCalls.find((c) => c.path === '/api/v1/login/finish').body.credential;
    assert.equal(sent.id, phoneCredentialId);
    assert.equal(sent.authenticatorAttachment, 'cross-platform');
    const gets = (await page.evaluate(() => window.__webauthnCalls)).filter((c) => c.op === 'get' && c.mediation !== 'conditional');
    assert.equal(gets.length, 1, 'one dialog, opened by Continue');

    // Signed in → the append offer.
    const offer = page.locator('#append-offer');
    await offer.waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(page.locator('#status'), 'Signed in with your phone.');
    await assertText(offer, 'Create a passkey on this device?');
    await assertText(offer, IDENTIFIER);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'append-title');
    assert.equal(await page.getByRole('button', { name: 'Not now' }).isVisible(), true);
    assert.deepEqual(await axeViolations(page), [], 'axe finds no problems on the append offer');
    await t.screenshot('cross-device-02-append-offer');

    // Accept: the phone is out of reach now (its authenticator is removed), so the new
    // passkey lands on Windows Hello.
    await t.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: t.phoneId });
    await page.getByRole('button', { name: 'Create passkey' }).click();
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(page.locator('#status'), 'Passkey created on this device.');
    const onDesktop = await t.credentials();
    assert.equal(onDesktop.length, 1, 'the new passkey is on the desktop platform authenticator');
    const desktopCredentialId = cdpIdToBase64url(onDesktop[0].credentialId);
    assert.equal(await page.locator('#passkey-list > li').count(), 2, 'the account lists the phone and the desktop passkey');
    const card = await page.locator(`#passkey-list > li[data-credential-id="${desktopCredentialId}"]`).innerText();
    assert.match(card, /Windows/, `the new passkey was made on Windows:\n${card}`);

    // Sign out (ignoring the autofill list), then sign in again: now it is `local`.
    await t.presence(false);
    const autofills = await t.conditionalRequests();
    await page.click('#signout');
    await assertText(page.locator('#status'), 'You are signed out.');
    await t.waitForConditionalRequest(autofills);
    await t.presence(true);
    const again = await enterIdentifier(t, IDENTIFIER);
    assert.equal(again.body.decision.verdict, 'local', JSON.stringify(again.body.decision));
    assert.deepEqual(again.body.publicKey.hints, ['client-device']);
    assert.ok(again.body.publicKey.allowCredentials.some((c) => c.id === desktopCredentialId));
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(page.locator('#status'), 'Signed in. Welcome back!');
    assert.equal(await page.locator('#cross-device').isVisible(), false, 'no phone this time');
    assert.deepEqual(t.pageErrors, []);
    await t.context.close();
  });

  it('when the phone refuses, offers the next way to sign in; two failures pause passkeys here', async () => {
    const credential = await signUpOnPhone(REFUSED_IDENTIFIER);
    // The phone cannot verify the user (no fingerprint, face or screen lock accepted).
    const t = await openDesktop(credential, { phoneVerifiesUser: false });
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });

    const { body: start } = await enterIdentifier(t, REFUSED_IDENTIFIER);
    assert.equal(start.decision.verdict, 'cross-device', JSON.stringify(start.decision));
    await page.locator('#cross-device').waitFor({ state: 'visible' });
    await t.presence(true, t.phoneId);
    const failure = page.waitForRequest((r) => r.url().endsWith('/api/v1/login/failure'));
    await page.getByRole('button', { name: 'Continue' }).click();

    // The page does not dead-end: the next alternative from the decision.
    const panel = page.locator('#alternative');
    await panel.waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(panel, "Passkey sign-in didn't work here");
    await assertText(panel, "Your phone didn't complete the sign-in");
    await assertText(panel, 'Other ways to sign in');
    await assertText(panel, 'Sign in on the device that has your passkey');
    await assertText(panel, 'make sure Bluetooth is on on both devices');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'alternative-title');
    assert.equal(await page.getByRole('button', { name: 'Try again' }).isVisible(), true);
    await assertText(page.locator('#status'), "Passkey sign-in didn't work here");

    // The SDK told the server, without holding up the page.
    const report = (await failure).postDataJSON();
    assert.equal(report.ceremonyId, start.ceremonyId);
    assert.equal(report.errorName, 'NotAllowedError');
    assert.equal(typeof report.elapsedMs, 'number');
    assert.equal(await page.locator('#account').isVisible(), false, 'not signed in');
    assert.deepEqual(await axeViolations(page), [], 'axe finds no problems on the alternative panel');
    await t.screenshot('cross-device-03-alternative');

    // Try again: the phone refuses a second time.
    const second = page.waitForResponse(identifierStart);
    await page.getByRole('button', { name: 'Try again' }).click();
    assert.equal((await (await second).json()).decision.verdict, 'cross-device');
    await page.locator('#cross-device').waitFor({ state: 'visible' });
    const secondFailure = page.waitForRequest((r) => r.url().endsWith('/api/v1/login/failure'));
    await page.getByRole('button', { name: 'Continue' }).click();
    await secondFailure;
    await assertText(page.locator('#alternative-what'), "Your phone didn't complete the sign-in");

    // Two failures in this browser: the server stops offering passkeys here, and says why.
    const third = page.waitForResponse(identifierStart);
    await page.getByRole('button', { name: 'Try again' }).click();
    const paused = await (await third).json();
    // `qr-approval` where the operator has Handoff QR approval on, `fallback` otherwise.
    assert.ok(['fallback', 'qr-approval'].includes(paused.decision.verdict), JSON.stringify(paused.decision));
    assert.ok(paused.decision.reasons.some((r) => r.code === 'recent-failures'));
    assert.equal(paused.publicKey, undefined, 'nothing to run');
    await assertText(panel, 'paused here for a while');
    if (paused.decision.verdict === 'qr-approval') await assertText(panel, 'Sign in with your phone (QR)');
    await panel.getByText('Why am I seeing this?').click();
    await assertText(page.locator('#alternative-reasons'), 'failed passkey attempts in this browser');
    await t.screenshot('cross-device-04-paused');
    const dialogs = (await page.evaluate(() => window.__webauthnCalls)).filter((c) => c.op === 'get' && c.mediation !== 'conditional');
    assert.equal(dialogs.length, 2, 'no third dialog once passkeys are paused');
    assert.deepEqual(t.pageErrors, []);
    await t.context.close();
  });

  it('"Use another method" on the explainer leads to the alternatives without opening a dialog', async () => {
    assert.ok(phoneCredential, 'needs the account from the first test');
    const t = await openDesktop(phoneCredential);
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    const { body } = await enterIdentifier(t, IDENTIFIER);
    assert.equal(body.decision.verdict, 'cross-device', JSON.stringify(body.decision));
    await page.locator('#cross-device').waitFor({ state: 'visible' });
    // On a narrow window (390 px) the explainer still fits without sideways scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    await noSidewaysScroll(page);
    await t.screenshot('cross-device-05-explainer-390px');
    await page.getByRole('button', { name: 'Use another method' }).click();
    const panel = page.locator('#alternative');
    await panel.waitFor({ state: 'visible' });
    await assertText(panel, 'Other ways to sign in');
    await assertText(panel, 'You chose not to use your phone this time.');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'alternative-title');
    await noSidewaysScroll(page);
    const dialogs = (await page.evaluate(() => window.__webauthnCalls)).filter((c) => c.op === 'get' && c.mediation !== 'conditional');
    assert.equal(dialogs.length, 0);
    assert.ok(!t.apiCalls.some((c) => c.path === '/api/v1/login/failure'), 'choosing another method is not a failure');
    // Back to the form.
    await page.getByRole('button', { name: 'Use a different account' }).click();
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    await t.context.close();
  });

  it('"Not now" on the append offer tells the server and goes to the account', async () => {
    // A fresh account: the first one has used up today's append offers.
    const credential = await signUpOnPhone(SKIP_IDENTIFIER);
    const t = await openDesktop(credential);
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    const { body } = await enterIdentifier(t, SKIP_IDENTIFIER);
    assert.equal(body.decision.verdict, 'cross-device', JSON.stringify(body.decision));
    await page.locator('#cross-device').waitFor({ state: 'visible' });
    await t.presence(true, t.phoneId);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.locator('#append-offer').waitFor({ state: 'visible', timeout: 15_000 });
    const skip = page.waitForResponse((r) => r.url().endsWith('/api/v1/passkeys/append/skip'));
    await page.getByRole('button', { name: 'Not now' }).click();
    assert.equal((await skip).status(), 204);
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    await assertText(page.locator('#status'), 'You can add a passkey for this device later from your account.');
    assert.equal((await t.credentials()).length, 0, 'no passkey was created on the desktop');

    // The passkey is still on the phone: having used it through this browser does not make it
    // "local" here, so the next sign-in is the phone again. (The phone is out of reach while the
    // page's autofill request is pending, so that request cannot sign in by itself.)
    await t.presence(false, t.phoneId);
    await page.click('#signout');
    await assertText(page.locator('#status'), 'You are signed out.');
    const again = await enterIdentifier(t, SKIP_IDENTIFIER);
    assert.equal(again.body.decision.verdict, 'cross-device', JSON.stringify(again.body.decision));
    assert.deepEqual(again.body.publicKey.hints, ['hybrid']);
    await page.locator('#cross-device').waitFor({ state: 'visible' });
    await t.context.close();
  });

  it('the explainer shows when the request times out and starts a new one on request', async () => {
    assert.ok(phoneCredential, 'needs the account from the first test');
    const t = await openDesktop(phoneCredential);
    const { page } = t;
    await page.clock.install(); // time flows normally until the test moves it on
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    const { body } = await enterIdentifier(t, IDENTIFIER);
    assert.equal(body.decision.verdict, 'cross-device', JSON.stringify(body.decision));
    const timeout = body.publicKey.timeout;
    assert.ok(timeout > 0, 'the ceremony has a timeout');
    const explainer = page.locator('#cross-device');
    await explainer.waitFor({ state: 'visible' });
    const minutes = Math.floor(Math.ceil(timeout / 1000) / 60);
    await assertText(page.locator('#cross-device-timer'), `This request stays open for ${minutes}:`);

    // The person leaves the screen open past the ceremony's timeout.
    await page.clock.fastForward(timeout + 1000);
    await assertText(explainer, 'This sign-in request timed out. Start again to get a new one.');
    await assertText(page.locator('#status'), 'This sign-in request timed out.');
    assert.equal(await page.getByRole('button', { name: 'Continue' }).isVisible(), false, 'the expired request cannot be continued');
    const calls = (await page.evaluate(() => window.__webauthnCalls)).filter((c) => c.mediation !== 'conditional');
    assert.equal(calls.length, 0, 'no dialog was opened');

    const fresh = page.waitForResponse(identifierStart);
    await page.getByRole('button', { name: 'Start again' }).click();
    const next = await (await fresh).json();
    assert.notEqual(next.ceremonyId, body.ceremonyId, 'a new ceremony');
    assert.equal(next.journeyId, body.journeyId, 'in the same journey');
    await page.locator('#cross-device-expired').waitFor({ state: 'hidden' });
    assert.equal(await page.getByRole('button', { name: 'Continue' }).isVisible(), true);
    assert.ok(!t.apiCalls.some((c) => c.path === '/api/v1/login/failure'), 'a request left to expire on the explainer is not a failed passkey');
    assert.deepEqual(t.pageErrors, []);
    await t.context.close();
  });

  it('without hybrid transport (what headless Chromium reports here), the verdict is not cross-device', async () => {
    assert.ok(phoneCredential, 'needs the account from the first test');
    const t = await openDesktop(phoneCredential, { bluetooth: false });
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    const { body, request } = await enterIdentifier(t, IDENTIFIER);
    assert.equal(request.postDataJSON().client.capabilities.hybridTransport, false, 'Chromium says: no hybrid transport');
    assert.notEqual(body.decision.verdict, 'cross-device', JSON.stringify(body.decision));
    assert.ok(body.decision.reasons.some((r) => r.code === 'no-hybrid-transport'), JSON.stringify(body.decision.reasons));
    // The person is told, instead of being sent into a QR code that cannot work.
    const panel = page.locator('#alternative');
    await panel.waitFor({ state: 'visible' });
    await assertText(panel, "Passkey sign-in isn't available here");
    await assertText(panel, 'Sign in on the device that has your passkey');
    assert.equal(await page.locator('#cross-device').isVisible(), false);
    assert.deepEqual(t.pageErrors, []);
    await t.context.close();
  });
});
