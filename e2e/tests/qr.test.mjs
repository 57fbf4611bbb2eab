/**
 * Handoff QR approval, driven like a person would on two devices:
 *
 * - a phone (Chrome on Android: mobile User-Agent and Client Hints, 390×844, touch) creates
 *   its account and passkey through the demo page, on its own virtual authenticator;
 * - a desktop (Chrome on Windows, no passkey) opens `/qr-login` and shows the QR. The test
 *   screenshots the QR element and decodes it with `zbarimg` (Debian's zbar-tools) — the real
 *   decoder, not the URL the page printed — then the phone opens the decoded URL, picks the
 *   number the desktop shows and approves; the desktop becomes signed in by itself.
 * - Deny: the desktop shows a clear message and a way on.
 * - A cut event stream (every `/events` request aborted): the desktop falls back to
 *   long-polling (`?wait=`) and still completes.
 * - The displayed code rotates before it stops working (codes live 60 s by default; the
 *   desktop replaces one 10 s early), and the old code is refused on the phone.
 * - Both devices record the steps of the journey as product events (PRODUCT.md §4.2):
 *   qr.shown and desktop.callback_received (via sse, or poll when the stream is cut) on
 *   the desktop, mobile.opened, confirmation.shown and confirmation.completed on the phone.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ARTIFACTS, IDENTITIES, axeViolations, launchBrowser, openPage, startServer } from '../lib/harness.mjs';

const IDENTIFIER = 'ada@example.com';
const DISPLAY_NAME = 'Ada Lovelace';
const QR_NAME = 'QR code to sign in with your phone';

/** Decode the QR in a PNG with zbarimg; returns the text it holds. */
function zbar(file) {
  try {
    return execFileSync('zbarimg', ['--raw', '-q', file], { encoding: 'utf8' }).trim();
  } catch (error) {
    if (error.code === 'ENOENT') throw new Error('zbarimg is missing: apt-get install -y zbar-tools');
    throw new Error(`zbarimg could not decode ${file} (exit ${error.status})`);
  }
}

describe('Handoff QR approval: desktop QR, phone approves', { timeout: 300_000 }, () => {
  let server;
  let browser;
  let phone;
  let desktop;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // The operator's GeoIP database (written by scripts/test) and the test itself as the
    // reverse proxy on loopback, so each page can come from an address of its own.
    assert.ok(process.env.HANDOFF_E2E_GEOIP, 'HANDOFF_E2E_GEOIP names the test GeoIP database (scripts/test writes it)');
    server = await startServer({
      name: 'server-qr',
      env: { HANDOFF_GEOIP_DATABASE: process.env.HANDOFF_E2E_GEOIP, HANDOFF_TRUSTED_PROXIES: '127.0.0.1, ::1' },
    });
    browser = await launchBrowser();
    phone = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, identity: IDENTITIES.androidPhone });
    desktop = await openPage(browser, { identity: IDENTITIES.windowsDesktop, authenticator: false });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function seeText(locator, expected, timeout = 10_000) {
    await locator.filter({ hasText: expected }).first().waitFor({ state: 'visible', timeout });
    const text = await locator.first().innerText();
    assert.ok(text.includes(expected), `expected "${expected}" in "${text}"`);
  }

  /** The desktop shows a QR for `identifier`; returns {url (decoded by zbarimg), number (as shown)}. */
  async function desktopShowsQr(name, identifier = IDENTIFIER) {
    const { page } = desktop;
    if (!page.url().endsWith('/qr-login')) await page.goto(`${server.baseUrl}/qr-login`);
    await page.getByRole('heading', { name: 'Sign in with your phone', level: 1 }).waitFor();
    await page.getByLabel('Email or username').fill(identifier);
    await page.getByRole('button', { name: 'Show QR code' }).click();
    return readQr(name);
  }

  async function readQr(name) {
    const { page } = desktop;
    const qr = page.getByRole('img', { name: QR_NAME });
    await qr.locator('svg').waitFor({ state: 'visible' });
    const box = await qr.boundingBox();
    assert.ok(box.width >= 264 && box.height >= 264, `QR is ${box.width}×${box.height} px, at least 264 expected`);
    const file = path.join(ARTIFACTS, `${name}-qr.png`);
    await qr.screenshot({ path: file });
    await desktop.screenshot(`${name}-desktop`);
    const url = zbar(file);
    const number = (await page.locator('.qr-match-code').innerText()).trim();
    assert.match(number, /^\d{2}$/, 'the desktop shows a two-digit number');
    await seeText(page.locator('.qr-approval'), 'Pick this number on your phone');
    return { url, number };
  }

  /**
   * The product events the two pages sent (their queues flushed first), with the journey
   * of the QR shown last on the desktop.
   */
  async function sentEvents() {
    for (const p of [desktop.page, phone.page]) {
      await p.evaluate(async () => {
        const { Handoff } = await import('/sdk/handoff.js');
        await new Handoff().flushEvents();
      });
    }
    const of = (t) => t.apiCalls.filter((c) => c.path === '/api/v1/events').flatMap((c) => c.body?.events ?? []);
    const onDesktop = of(desktop);
    const journeyId = onDesktop.filter((e) => e.name === 'qr.shown').at(-1)?.journeyId;
    assert.ok(journeyId, 'the desktop recorded qr.shown');
    const mine = (list) => list.filter((e) => e.journeyId === journeyId);
    return { journeyId, desktop: mine(onDesktop), phone: mine(of(phone)) };
  }

  /** The phone opens the link; if its passkey check is stale it confirms with the passkey first. */
  async function phoneOpens(url) {
    const { page } = phone;
    await page.goto(url);
    const confirm = page.getByRole('heading', { name: 'Sign in on your computer?' });
    const signin = page.getByRole('button', { name: 'Sign in with a passkey' });
    await confirm.or(signin).first().waitFor({ state: 'visible', timeout: 10_000 });
    if (await signin.isVisible()) await signin.click();
    try {
      await confirm.waitFor({ state: 'visible', timeout: 10_000 });
    } catch (error) {
      await phone.screenshot('phone-open-failed');
      const text = await page.locator('main').innerText();
      throw new Error(`the phone did not reach the confirmation; it shows:\n${text}`, { cause: error });
    }
  }

  it('(a) the phone signs up on the demo page', async () => {
    const { page } = phone;
    await page.goto(server.baseUrl);
    const signup = page.getByRole('region', { name: 'Create an account' });
    await signup.getByLabel('Email or username').fill(IDENTIFIER);
    await signup.getByLabel('Display name').fill(DISPLAY_NAME);
    await signup.getByRole('button', { name: /Create account/ }).click();
    await seeText(page.locator('main'), `Signed in as ${IDENTIFIER}`, 15_000);
    assert.equal((await phone.credentials()).length, 1, 'the phone holds one passkey');
  });

  it('(b) desktop QR decoded by zbarimg; the phone picks the number and approves; the desktop signs in by itself', async () => {
    const { url, number } = await desktopShowsQr('b');
    assert.ok(url.startsWith(`${server.baseUrl}/q/`), `the QR holds a link to this server's phone page: ${url}`);
    assert.ok(url.slice(`${server.baseUrl}/q/`.length).length >= 22, 'the token carries at least 128 bits');
    // "Trouble scanning?" shows the same link as text to type.
    await desktop.page.getByText('Trouble scanning?').click();
    await seeText(desktop.page.locator('.qr-trouble'), url);
    await seeText(desktop.page.getByRole('status').first(), 'Waiting for your phone to scan the code.');
    assert.deepEqual(await axeViolations(desktop.page), [], 'axe finds no WCAG A/AA problems on the QR page');

    await phoneOpens(url);
    const p = phone.page;
    await seeText(p.locator('#confirm'), `Approving as ${DISPLAY_NAME}`);
    await seeText(p.locator('#confirm'), IDENTIFIER);
    await seeText(p.locator('.requester'), 'Chrome');
    await seeText(p.locator('.requester'), 'Windows');
    await seeText(p.locator('#confirm'), 'Only approve if you are signing in on a computer in front of you right now. If someone sent you this code, deny.');
    assert.equal(await p.locator('#mismatch').isVisible(), false, 'no account warning when the identifiers match');
    const radios = p.getByRole('radio');
    assert.equal(await radios.count(), 3, 'three numbers to choose from');
    // Approve and Deny are equally prominent.
    const [approveBox, denyBox] = [await p.getByRole('button', { name: 'Approve' }).boundingBox(), await p.getByRole('button', { name: 'Deny' }).boundingBox()];
    assert.equal(Math.round(approveBox.width), Math.round(denyBox.width), 'Approve and Deny are as wide');
    assert.equal(Math.round(approveBox.height), Math.round(denyBox.height), 'Approve and Deny are as tall');
    const scroll = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(scroll <= 0, 'no sideways scrolling on the phone');
    assert.deepEqual(await axeViolations(p), [], 'axe finds no WCAG A/AA problems on the phone page');
    await phone.screenshot('b-phone-confirm');

    // The desktop learned of the scan.
    await seeText(desktop.page.getByRole('status').first(), 'Scanned on a phone — confirm there', 10_000);

    await p.getByRole('radio', { name: number, exact: true }).check();
    await p.getByRole('button', { name: 'Approve' }).click();
    await p.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });
    await seeText(p.locator('#result'), 'You can go back to your computer');
    await phone.screenshot('b-phone-approved');

    // The desktop is signed in with no further action.
    await seeText(desktop.page.locator('#qr-signed-in'), `Signed in as ${IDENTIFIER}`, 15_000);
    const session = await desktop.page.evaluate(() => fetch('/api/v1/session', { credentials: 'same-origin' }).then((r) => r.json()));
    assert.equal(session.identifier, IDENTIFIER, 'the desktop browser holds a session for the account');
    await desktop.screenshot('b-desktop-signed-in');

    // The journey as both devices recorded it.
    const trail = await sentEvents();
    const shown = trail.desktop.find((e) => e.name === 'qr.shown');
    assert.ok(shown.attrs.sizePx >= 264, `qr.shown carries the rendered size: ${JSON.stringify(shown.attrs)}`);
    assert.equal(shown.attrs.rotation, 0);
    assert.equal(shown.device, 'desktop');
    assert.equal(shown.flow, 'qr-approval');
    assert.deepEqual(trail.desktop.filter((e) => e.name === 'desktop.callback_received').map((e) => e.attrs), [{ via: 'sse' }]);
    assert.ok(!trail.desktop.some((e) => e.name === 'fallback.chosen'), 'a QR started on its own page is not a fallback');
    assert.deepEqual(
      trail.phone.map((e) => e.name),
      ['mobile.opened', 'confirmation.shown', 'confirmation.completed'],
      'the phone recorded its steps of the same journey',
    );
    assert.ok(trail.phone.every((e) => e.device === 'mobile' && e.flow === 'qr-approval'));
    assert.deepEqual(trail.phone.at(-1).attrs, { action: 'approve', matchOk: true });
    const ids = [...trail.desktop, ...trail.phone].map((e) => e.eventId);
    assert.equal(new Set(ids).size, ids.length, 'each event once, each with its own eventId');
    assert.deepEqual(desktop.pageErrors, [], 'no script errors on the desktop');
    assert.deepEqual(phone.pageErrors, [], 'no script errors on the phone');
  });

  it('(b2) the QR-approved desktop asks for a passkey before signing out another device or adding a passkey', async () => {
    // The desktop ran no passkey ceremony: its session cannot take sensitive actions yet. A
    // "hybrid" authenticator holding the phone's passkey stands in for the phone over
    // Bluetooth when the page asks for the passkey.
    const { page } = desktop;
    const [{ credentialId }] = await phone.credentials();
    const hybridId = await desktop.addAuthenticator({ transport: 'hybrid' });
    // One passkey, used from two places: its signature counter moves with it, or the
    // server would rightly see a cloned authenticator.
    const carry = async (from, fromId, to, toId) => {
      const credential = (await from.credentials(fromId)).find((c) => c.credentialId === credentialId);
      await to.cdp.send('WebAuthn.removeCredential', { authenticatorId: toId, credentialId }).catch(() => {});
      await to.cdp.send('WebAuthn.addCredential', { authenticatorId: toId, credential });
    };
    const toDesktop = () => carry(phone, phone.authenticatorId, desktop, hybridId);
    const backToPhone = () => carry(desktop, hybridId, phone, phone.authenticatorId);
    await toDesktop();
    await page.goto(server.baseUrl);
    await page.getByRole('heading', { name: 'Your account' }).waitFor({ timeout: 10_000 });
    const session = await page.evaluate(() => fetch('/api/v1/session').then((r) => r.json()));
    assert.equal(session.method, 'qr-approval');
    assert.equal(session.stepUpUntil, undefined, 'no passkey check on this computer yet');
    const webauthnCalls = () => page.evaluate(() => window.__webauthnCalls.map((c) => c.op));
    const apiStatus = () => desktop.apiCalls.length;

    // Sign out the phone: the page asks for the passkey first, then signs the phone out.
    const before = apiStatus();
    const phoneRow = page.locator('#device-list li').filter({ hasNotText: 'this browser' }).first();
    await phoneRow.getByRole('button', { name: /Sign out/ }).click();
    await seeText(page.getByRole('status').first(), 'Signed out', 15_000);
    assert.deepEqual(await webauthnCalls(), ['get'], 'one passkey check (get) ran before the sign-out');
    const calls = desktop.apiCalls.slice(before).map((c) => `${c.method} ${c.path}`);
    const deletes = calls.filter((c) => c.startsWith('DELETE /api/v1/sessions/'));
    assert.equal(deletes.length, 2, `refused, then retried after the passkey check: ${calls.join(', ')}`);
    assert.ok(calls.indexOf('POST /api/v1/login/finish') > calls.indexOf(deletes[0]), 'the check came between');
    await backToPhone();
    await desktop.screenshot('b2-desktop-stepped-up');
    const after = await page.evaluate(() => fetch('/api/v1/session').then((r) => r.json()));
    assert.equal(after.method, 'qr-approval', 'the same session, stepped up');
    assert.ok(after.stepUpUntil, 'a passkey check on this computer now counts');

    // A new QR sign-in (the phone signs in again) starts without a check again.
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    const { url, number } = await desktopShowsQr('b2');
    await phoneOpens(url);
    await phone.page.getByRole('radio', { name: number, exact: true }).check();
    await phone.page.getByRole('button', { name: 'Approve' }).click();
    await phone.page.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });
    await seeText(desktop.page.locator('#qr-signed-in'), `Signed in as ${IDENTIFIER}`, 15_000);
    await page.goto(server.baseUrl);
    await page.getByRole('heading', { name: 'Your account' }).waitFor({ timeout: 10_000 });
    // Add a passkey on this computer: the passkey check (get) comes before the creation.
    // Once the check is done the phone's passkey goes back to the phone (else this
    // authenticator would hold an excluded credential and rightly refuse to create one).
    await toDesktop();
    let checked = false;
    const onResponse = (r) => {
      if (r.url().endsWith('/api/v1/login/finish') && r.status() === 200) checked = true;
    };
    page.on('response', onResponse);
    await page.route('**/api/v1/passkeys/registration/start', async (route) => {
      if (checked) {
        await backToPhone();
        await desktop.cdp.send('WebAuthn.removeCredential', { authenticatorId: hybridId, credentialId });
      }
      await route.continue();
    });
    await page.getByRole('button', { name: 'Add a passkey on this device' }).click();
    await seeText(page.getByRole('status').first(), 'Passkey added', 15_000);
    assert.ok(checked, 'a passkey check ran');
    assert.deepEqual(await webauthnCalls(), ['get', 'create'], 'the check ran before the new passkey was made');
    await page.unroute('**/api/v1/passkeys/registration/start');
    page.off('response', onResponse);
    await desktop.screenshot('b2-desktop-added');
    await desktop.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: hybridId });
    assert.deepEqual(desktop.pageErrors, [], 'no script errors on the desktop');
    // The phone page was left signed out above; the next tests start from a signed-in phone.
    await phone.page.goto(server.baseUrl);
  });

  it('(c) deny on the phone: the desktop says so and offers a new code', async () => {
    await desktop.page.evaluate(() => fetch('/api/v1/session', { method: 'DELETE' }));
    await desktop.page.goto(`${server.baseUrl}/qr-login`);
    // The computer asks for another account than the phone's: the phone warns.
    const { url } = await desktopShowsQr('c', 'grace@example.com');
    await phoneOpens(url);
    const p = phone.page;
    await seeText(p.locator('#mismatch'), `The computer asked for grace@example.com, you are signed in as ${IDENTIFIER}.`);
    assert.equal(await p.getByRole('button', { name: 'Approve' }).isVisible(), false, 'another account cannot be approved');
    await phone.screenshot('c-phone-mismatch');
    await p.getByRole('button', { name: 'Deny' }).click();
    await p.getByRole('heading', { name: 'Sign-in denied' }).waitFor({ timeout: 10_000 });
    await phone.screenshot('c-phone-denied');

    await seeText(desktop.page.locator('.qr-approval'), 'The sign-in was declined on the phone', 10_000);
    await desktop.page.getByRole('button', { name: 'Show a new code' }).waitFor();
    await desktop.page.getByRole('button', { name: 'Use another method' }).waitFor();
    assert.equal(await desktop.page.locator('#qr-signed-in').isVisible(), false, 'the desktop is not signed in');
    await desktop.screenshot('c-desktop-denied');
  });

  it('(c2) the phone sees where the computer is and is warned when it is far away', async () => {
    // The computer in London, the phone in Sydney (the test GeoIP database's networks).
    await desktop.page.context().setExtraHTTPHeaders({ 'x-forwarded-for': '81.2.69.160' });
    await phone.page.context().setExtraHTTPHeaders({ 'x-forwarded-for': '1.128.3.4' });
    try {
      await desktop.page.getByRole('button', { name: 'Show a new code' }).click();
      const { url } = await readQr('c2');
      await phoneOpens(url);
      const p = phone.page;
      await seeText(p.locator('.requester'), 'London, England, United Kingdom');
      await seeText(p.locator('.requester'), '81.2.69.160');
      const warning = p.getByRole('alert').filter({ hasText: 'somewhere else' });
      await warning.waitFor({ state: 'visible' });
      const text = await warning.innerText();
      assert.match(text, /about 1\d[,.\s\u202f]?\d{3} km from this phone/, `the warning gives the distance: ${text}`);
      assert.deepEqual(await axeViolations(p), [], 'axe finds no WCAG A/AA problems with the place and the warning');
      await phone.screenshot('c2-phone-far-apart');
      await p.getByRole('button', { name: 'Deny' }).click();
      await p.getByRole('heading', { name: 'Sign-in denied' }).waitFor({ timeout: 10_000 });
      await seeText(desktop.page.locator('.qr-approval'), 'The sign-in was declined on the phone', 10_000);
    } finally {
      await desktop.page.context().setExtraHTTPHeaders({});
      await phone.page.context().setExtraHTTPHeaders({});
    }
  });

  it('(d) the event stream is cut: the desktop long-polls and still completes', async () => {
    const { page } = desktop;
    const events = [];
    const polls = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (/^\/api\/v1\/qr\/[^/]+\/events$/.test(u.pathname)) events.push(u.pathname);
      if (/^\/api\/v1\/qr\/[^/]+$/.test(u.pathname) && u.searchParams.has('wait')) polls.push(u.href);
    });
    await page.route('**/api/v1/qr/*/events', (route) => route.abort('connectionreset'));

    // A fresh attempt for the phone's own account (the last one asked for another account,
    // which this server refuses to approve).
    await page.goto(`${server.baseUrl}/qr-login`);
    const { url, number } = await desktopShowsQr('d');
    await phoneOpens(url);
    await seeText(page.getByRole('status').first(), 'Scanned on a phone — confirm there', 30_000);
    await phone.page.getByRole('radio', { name: number, exact: true }).check();
    await phone.page.getByRole('button', { name: 'Approve' }).click();
    await phone.page.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });

    await seeText(page.locator('#qr-signed-in'), `Signed in as ${IDENTIFIER}`, 30_000);
    assert.ok(events.length >= 1, 'the desktop tried the event stream first');
    assert.ok(polls.length >= 1, 'the desktop fell back to long-polling');
    assert.ok(polls.every((u) => u.includes('wait=25')), `long-polls wait 25 s: ${polls.join(', ')}`);
    const trail = await sentEvents();
    assert.deepEqual(
      trail.desktop.filter((e) => e.name === 'desktop.callback_received').map((e) => e.attrs),
      [{ via: 'poll' }],
      'the desktop learned of the approval by long-polling',
    );
    await desktop.screenshot('d-desktop-signed-in-by-polling');
    await page.unroute('**/api/v1/qr/*/events');
  });

  it('(e) a wrong number stops the attempt on both screens', async () => {
    await desktop.page.getByRole('button', { name: 'Sign out' }).click();
    const { url, number } = await desktopShowsQr('e');
    await phoneOpens(url);
    const radios = phone.page.getByRole('radio');
    const values = await radios.evaluateAll((inputs) => inputs.map((i) => i.value));
    const wrong = values.find((v) => v !== number);
    await phone.page.getByRole('radio', { name: wrong, exact: true }).check();
    await phone.page.getByRole('button', { name: 'Approve' }).click();
    await phone.page.getByRole('heading', { name: 'The number did not match' }).waitFor({ timeout: 10_000 });
    await seeText(phone.page.locator('#result'), 'The sign-in was stopped to keep your account safe.');
    await seeText(desktop.page.locator('.qr-approval'), 'The number did not match', 10_000);
    await desktop.page.getByRole('button', { name: 'Show a new code' }).waitFor();
    assert.equal(await desktop.page.locator('#qr-signed-in').isVisible(), false, 'the desktop is not signed in');
    await desktop.screenshot('e-desktop-wrong-number');
  });

  it('(f) the QR component works at 390 px', async () => {
    await desktop.page.setViewportSize({ width: 390, height: 844 });
    await desktop.page.getByRole('button', { name: 'Show a new code' }).click();
    const { url } = await readQr('f-390px');
    assert.ok(url.startsWith(`${server.baseUrl}/q/`));
    const scroll = await desktop.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(scroll <= 0, 'no sideways scrolling at 390 px');
    await desktop.page.setViewportSize({ width: 1280, height: 900 });
  });

  it('(g) the code rotates before it stops working; the old code is refused on the phone', async () => {
    await desktop.page.getByRole('button', { name: 'Use another method' }).click();
    const first = await desktopShowsQr('g1');
    // Codes live 60 s; the desktop replaces one about 10 s before that.
    await desktop.page.waitForFunction(
      (old) => document.querySelector('.qr-link')?.textContent && document.querySelector('.qr-link').textContent !== old,
      first.url,
      { timeout: 65_000 },
    );
    const second = await readQr('g2');
    assert.notEqual(second.url, first.url, 'the QR now holds a new link');

    await phone.page.goto(first.url);
    const signin = phone.page.getByRole('button', { name: 'Sign in with a passkey' });
    const gone = phone.page.getByRole('heading', { name: 'This code is no longer valid' });
    await gone.or(signin).first().waitFor({ timeout: 10_000 });
    if (await signin.isVisible()) await signin.click();
    await gone.waitFor({ timeout: 10_000 });
    await phone.screenshot('g-phone-old-code');

    // The current code still works.
    await phoneOpens(second.url);
    await phone.page.getByRole('radio', { name: second.number, exact: true }).check();
    await phone.page.getByRole('button', { name: 'Approve' }).click();
    await phone.page.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });
    await seeText(desktop.page.locator('#qr-signed-in'), `Signed in as ${IDENTIFIER}`, 15_000);
  });
});

describe('Handoff QR approval: a stale passkey check on the phone', { timeout: 120_000 }, () => {
  let server;
  let browser;
  let phone;
  let desktop;

  before(async () => {
    // Approvals need a passkey check within the last second: every approval asks again.
    server = await startServer({ name: 'server-qr-reauth', env: { HANDOFF_QR_REAUTH_AFTER_SECONDS: '1' } });
    browser = await launchBrowser();
    phone = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, identity: IDENTITIES.androidPhone });
    desktop = await openPage(browser, { identity: IDENTITIES.windowsDesktop, authenticator: false });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it(
    'reauth-required: the phone runs the passkey again and the approval goes through',
    async () => {
      const p = phone.page;
      await p.goto(server.baseUrl);
      const signup = p.getByRole('region', { name: 'Create an account' });
      await signup.getByLabel('Email or username').fill(IDENTIFIER);
      await signup.getByRole('button', { name: /Create account/ }).click();
      await p.getByText(`Signed in as ${IDENTIFIER}`).waitFor({ timeout: 15_000 });

      await desktop.page.goto(`${server.baseUrl}/qr-login`);
      await desktop.page.getByRole('button', { name: 'Show QR code' }).click();
      const qr = desktop.page.getByRole('img', { name: QR_NAME });
      await qr.locator('svg').waitFor();
      const file = path.join(ARTIFACTS, 'reauth-qr.png');
      await qr.screenshot({ path: file });
      const number = (await desktop.page.locator('.qr-match-code').innerText()).trim();

      await p.goto(zbar(file));
      await p.getByRole('heading', { name: 'Sign in on your computer?' }).waitFor({ timeout: 10_000 });
      await p.waitForTimeout(1500); // the passkey check is now stale
      const before = await p.evaluate(() => window.__webauthnCalls.length);
      await p.getByRole('radio', { name: number, exact: true }).check();
      await p.getByRole('button', { name: 'Approve' }).click();
      await p.waitForFunction((n) => window.__webauthnCalls.length > n, before, { timeout: 10_000 });
      await phone.screenshot('reauth-phone-after-retry');
      await p.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });
      await desktop.page.locator("#qr-signed-in").filter({ hasText: `Signed in as ${IDENTIFIER}` }).waitFor({ state: "visible", timeout: 15_000 });
    },
  );
});
