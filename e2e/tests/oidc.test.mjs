/**
 * Handoff as an OpenID Connect provider, seen from an app that uses it: the example
 * relying party `examples/node-rp` (openid-client, the README's "Use it for your app")
 * runs next to the real `handoff serve`, registered as a confidential client with the CLI
 * (`handoff clients add … --json`, on the server's database), and Chromium clicks through:
 *
 * (a) a person with a passkey (signed up on Handoff, then signed out) selects "Sign in with
 *     Handoff" on the app, types their identifier on Handoff's sign-in page, uses the
 *     passkey (virtual authenticator), allows the app on the consent page and is back in the
 *     app, which shows the verified ID token's claims; a second sign-in goes straight back
 *     (consent remembered, Handoff session live) without showing a Handoff page;
 * (b) a computer without any passkey starts at the app, types the identifier, chooses Handoff
 *     QR approval; a phone signed in to Handoff reads the QR (zbarimg on a screenshot, as in
 *     qr.test.mjs), picks the number and approves; the computer ends up in the app, with an
 *     `amr` that says it was not a passkey on this device;
 * (c) an authorization request with a redirect_uri the client never registered shows
 *     Handoff's error page and the browser stays on Handoff;
 * (d) "Sign out" in the app ends the Handoff session too and comes back to the app.
 *
 * The steps share one server, one app and one browser, and run in order.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ARTIFACTS, IDENTITIES, freePort, launchBrowser, openPage, runHandoff, startNodeRp, startServer } from '../lib/harness.mjs';

const IDENTIFIER = 'ada@example.com'; // signs in with a passkey on this computer (a)
const PHONE_IDENTIFIER = 'grace@example.com'; // her passkey is on her phone (b)
const CLIENT_NAME = 'Example app';
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

describe('OpenID Connect: the example app signs people in with Handoff', { timeout: 300_000 }, () => {
  let server;
  let rp;
  let client; // {clientId, clientSecret}
  let discovery;
  let browser;
  let person; // (a) and (c), (d): a computer with a platform passkey
  let passkeyClaims;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServer({ name: 'server-oidc' });
    const rpPort = await freePort();
    const rpUrl = `http://localhost:${rpPort}`;
    const out = runHandoff(server, [
      'clients', 'add',
      '--name', CLIENT_NAME,
      '--redirect-uri', `${rpUrl}/callback`,
      '--post-logout-redirect-uri', `${rpUrl}/`,
      '--json',
    ]);
    const line = out.split('\n').find((l) => l.trim().startsWith('{'));
    assert.ok(line, `clients add --json printed JSON:\n${out}`);
    client = JSON.parse(line);
    assert.ok(client.clientId, `a client id: ${line}`);
    assert.ok(client.clientSecret, `a confidential client has a secret: ${line}`);
    rp = await startNodeRp({ port: rpPort, issuer: server.baseUrl, clientId: client.clientId, clientSecret: client.clientSecret });
    discovery = await (await fetch(`${server.baseUrl}/.well-known/openid-configuration`)).json();
    browser = await launchBrowser();
    person = await openPage(browser);
  });

  after(async () => {
    await browser?.close();
    await rp?.stop();
    await server?.stop();
  });

  async function seeText(locator, expected, timeout = 10_000) {
    await locator.filter({ hasText: expected }).first().waitFor({ state: 'visible', timeout });
    const text = await locator.first().innerText();
    assert.ok(text.includes(expected), `expected "${expected}" in "${text}"`);
  }

  /** Sign up on Handoff's own page (`/`) with the context's authenticator. */
  async function signUp(t, identifier) {
    await t.page.goto(server.baseUrl);
    const signup = t.page.getByRole('region', { name: 'Create an account' });
    await signup.getByLabel('Email or username').fill(identifier);
    await signup.getByRole('button', { name: /Create account/ }).click();
    await seeText(t.page.locator('main'), `Signed in as ${identifier}`, 15_000);
  }

  /** The app's home page, signed out: "Sign in with Handoff" leads to Handoff's sign-in page. */
  async function startAtApp(t) {
    const { page } = t;
    await page.goto(rp.url);
    await seeText(page.locator('main'), 'You are signed out.');
    await page.getByRole('link', { name: 'Sign in with Handoff' }).click();
    await page.waitForURL((u) => u.origin === server.baseUrl && u.searchParams.has('request'), { timeout: 10_000 });
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    await seeText(page.locator('#oidc-banner'), `Sign in to continue to ${CLIENT_NAME}.`);
  }

  /** Handoff's consent page, if it comes: it names the app; the person selects Allow. */
  async function allowIfAsked(t, name) {
    const { page } = t;
    const allow = page.getByRole('button', { name: 'Allow', exact: true });
    const back = (u) => u.origin === rp.url && u.pathname === '/callback';
    await Promise.race([allow.waitFor({ state: 'visible', timeout: 20_000 }), page.waitForURL(back, { timeout: 20_000 })]);
    if (!back(new URL(page.url()))) {
      assert.equal(new URL(page.url()).origin, server.baseUrl, 'the consent page is on Handoff');
      await seeText(page.locator('body'), CLIENT_NAME);
      assert.equal(await page.getByRole('button', { name: 'Deny', exact: true }).isVisible(), true, 'Deny is offered too');
      await t.screenshot(`${name}-consent`);
      await allow.click();
    }
    try {
      await page.waitForURL(back, { timeout: 15_000 });
    } catch (error) {
      await t.screenshot(`${name}-not-back`);
      const text = await page.locator('body').innerText().catch(() => '');
      throw new Error(`the browser did not come back to the app; it is at ${page.url()}, showing:\n${text}`, { cause: error });
    }
  }

  /** What the app shows after the callback: the verified ID token claims and the userinfo. */
  async function appShows(page) {
    await page.locator('#claims').waitFor({ state: 'visible', timeout: 10_000 });
    const error = page.locator('#error');
    assert.equal(await error.count(), 0, 'the app shows no error');
    return {
      claims: JSON.parse(await page.locator('#claims').innerText()),
      userinfo: JSON.parse(await page.locator('#userinfo').innerText()),
    };
  }

  /** Handoff pages (not redirects) the page's main frame showed while `fn` ran. */
  async function handoffPagesDuring(page, fn) {
    const shown = [];
    const onResponse = (r) => {
      const req = r.request();
      if (req.isNavigationRequest() && req.frame() === page.mainFrame() && r.url().startsWith(server.baseUrl) && r.status() < 300) {
        shown.push(new URL(r.url()).pathname + new URL(r.url()).search);
      }
    };
    page.on('response', onResponse);
    try {
      await fn();
    } finally {
      page.off('response', onResponse);
    }
    return shown;
  }

  it('discovery names this server as the issuer', () => {
    assert.equal(discovery.issuer, server.baseUrl);
    for (const key of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'end_session_endpoint']) {
      assert.ok(discovery[key]?.startsWith(server.baseUrl), `${key}: ${discovery[key]}`);
    }
  });

  it('(a) passkey: the app sends the person to Handoff, the passkey and the consent bring them back signed in', async () => {
    const t = person;
    const { page } = t;
    await signUp(t, IDENTIFIER);
    // Sign out of Handoff; the person then ignores the autofill list (presence off) until they
    // have typed their identifier and selected Continue.
    await t.presence(false);
    await page.locator('#signout').click();
    await page.locator('#signin-title').waitFor({ state: 'visible' });

    await startAtApp(t);
    await t.screenshot('oidc-a1-handoff-sign-in');
    // Handoff's page starts a passkey autofill request; the person does not pick from it.
    await t.waitForConditionalRequest(0).catch(() => {});
    await t.presence(true);
    const signCount = (await t.credentials())[0].signCount;
    await page.locator('#identifier').fill(IDENTIFIER);
    await page.locator('#signin-continue').click();

    await allowIfAsked(t, 'oidc-a2');
    const { claims, userinfo } = await appShows(page);
    await t.screenshot('oidc-a3-app-signed-in');
    assert.ok((await t.credentials())[0].signCount > signCount, 'the passkey signed in (the authenticator signed an assertion)');
    assert.ok(typeof claims.sub === 'string' && claims.sub.length > 0, `sub: ${JSON.stringify(claims)}`);
    assert.equal(claims.iss, server.baseUrl);
    assert.ok([].concat(claims.aud).includes(client.clientId), `the ID token is for this app: aud ${JSON.stringify(claims.aud)}`);
    assert.equal(claims.preferred_username, IDENTIFIER);
    assert.ok(Array.isArray(claims.amr) && claims.amr.length > 0, `amr is a non-empty list: ${JSON.stringify(claims.amr)}`);
    assert.equal(userinfo.sub, claims.sub, 'userinfo is about the same person');
    await seeText(page.locator('main'), `Signed in as ${IDENTIFIER}`);
    passkeyClaims = claims;

    // Again: consent is remembered and the Handoff session is live, so no Handoff page shows.
    const shown = await handoffPagesDuring(page, async () => {
      await page.goto(`${rp.url}/login`);
      await page.waitForURL((u) => u.origin === rp.url && u.pathname === '/callback', { timeout: 15_000 });
    });
    assert.deepEqual(shown, [], 'straight back to the app: no sign-in or consent page');
    const again = await appShows(page);
    assert.equal(again.claims.sub, claims.sub, 'the same person');
    assert.notEqual(again.claims.nonce, claims.nonce, 'a new ID token for the new request');
    assert.deepEqual(t.pageErrors, [], 'no script errors');
  });

  it('(b) QR approval: a computer without a passkey signs in through the phone and lands in the app', async () => {
    const phone = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, identity: IDENTITIES.androidPhone });
    const desktop = await openPage(browser, { identity: IDENTITIES.windowsDesktop, authenticator: false });
    try {
      await signUp(phone, PHONE_IDENTIFIER);

      const { page } = desktop;
      await startAtApp(desktop);
      await page.locator('#identifier').fill(PHONE_IDENTIFIER);
      await page.locator('#signin-continue').click();
      const qrOption = page.getByRole('button', { name: 'Sign in with your phone (QR)' });
      await qrOption.waitFor({ state: 'visible', timeout: 15_000 });
      await desktop.screenshot('oidc-b1-desktop-other-ways');
      await qrOption.click();

      const qr = page.getByRole('img', { name: QR_NAME });
      await qr.locator('svg').waitFor({ state: 'visible', timeout: 10_000 });
      const file = path.join(ARTIFACTS, 'oidc-b2-qr.png');
      await qr.screenshot({ path: file });
      await desktop.screenshot('oidc-b2-desktop-qr');
      const url = zbar(file);
      assert.ok(url.startsWith(`${server.baseUrl}/q/`), `the QR holds a link to Handoff's phone page: ${url}`);
      const number = (await page.locator('.qr-match-code').innerText()).trim();
      assert.match(number, /^\d{2}$/, 'the desktop shows a two-digit number');

      const p = phone.page;
      await p.goto(url);
      await p.getByRole('heading', { name: 'Sign in on your computer?' }).waitFor({ timeout: 10_000 });
      await seeText(p.locator('#confirm'), PHONE_IDENTIFIER);
      await p.getByRole('radio', { name: number, exact: true }).check();
      await phone.screenshot('oidc-b3-phone-confirm');
      await p.getByRole('button', { name: 'Approve' }).click();
      await p.getByRole('heading', { name: 'Approved' }).waitFor({ timeout: 10_000 });

      // The computer goes on by itself: consent for this person's first use of the app, then the app.
      await allowIfAsked(desktop, 'oidc-b4');
      const { claims, userinfo } = await appShows(page);
      await desktop.screenshot('oidc-b5-app-signed-in');
      assert.equal(claims.iss, server.baseUrl);
      assert.equal(claims.preferred_username, PHONE_IDENTIFIER);
      assert.equal(userinfo.sub, claims.sub);
      assert.ok(Array.isArray(claims.amr) && claims.amr.length > 0, `amr is a non-empty list: ${JSON.stringify(claims.amr)}`);
      assert.ok(passkeyClaims, 'needs the passkey sign-in from (a) to compare with');
      assert.notDeepEqual(
        claims.amr,
        passkeyClaims.amr,
        `QR approval (${JSON.stringify(claims.amr)}) is told apart from a passkey here (${JSON.stringify(passkeyClaims.amr)})`,
      );
      assert.notEqual(claims.sub, passkeyClaims.sub, 'another person than in (a)');
      const session = await desktop.context.request.get(`${server.baseUrl}/api/v1/session`);
      assert.equal(session.status(), 200, 'the computer is signed in to Handoff too');
      assert.equal((await session.json()).identifier, PHONE_IDENTIFIER);
      assert.deepEqual(desktop.pageErrors, [], 'no script errors on the computer');
      assert.deepEqual(phone.pageErrors, [], 'no script errors on the phone');
    } finally {
      await desktop.context.close();
      await phone.context.close();
    }
  });

  it('(c) a redirect_uri the app never registered: Handoff shows an error and does not leave', async () => {
    const t = await openPage(browser, { authenticator: false });
    try {
      const { page } = t;
      const visitedApp = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(server.baseUrl)) visitedApp.push(r.url());
      });
      const verifier = randomBytes(32).toString('base64url');
      for (const [i, redirectUri] of [`${rp.url}/elsewhere`, 'https://attacker.example/callback'].entries()) {
        const url = new URL(discovery.authorization_endpoint);
        url.search = new URLSearchParams({
          response_type: 'code',
          client_id: client.clientId,
          redirect_uri: redirectUri,
          scope: 'openid profile email',
          state: 'state-123',
          nonce: 'nonce-123',
          code_challenge: createHash('sha256').update(verifier).digest('base64url'),
          code_challenge_method: 'S256',
        }).toString();
        const response = await page.goto(url.href);
        await page.waitForLoadState('load');
        await t.screenshot(`oidc-c${i + 1}-bad-redirect-uri`);
        assert.equal(new URL(page.url()).origin, server.baseUrl, `still on Handoff, not sent to ${redirectUri}`);
        assert.ok(response.status() >= 400 && response.status() < 500, `an error status: ${response.status()}`);
        await page.getByRole('heading', { level: 1, name: 'This sign-in link is not valid' }).waitFor({ timeout: 5_000 });
        const text = await page.locator('main').innerText();
        assert.ok(text.includes(redirectUri) && /redirect URI/i.test(text), `the page says which address it refused:\n${text}`);
        assert.ok(!text.includes('state-123'), 'nothing from the request is handed on');
      }
      assert.deepEqual(visitedApp, [], 'the browser never went to the redirect_uri');
    } finally {
      await t.context.close();
    }
  });

  it('(d) "Sign out" in the app ends the Handoff session too and comes back to the app', async () => {
    assert.ok(passkeyClaims, 'needs the app session from (a)');
    const t = person;
    const { page } = t;
    await page.goto(rp.url);
    await seeText(page.locator('main'), `Signed in as ${IDENTIFIER}`);
    await page.getByRole('link', { name: 'Sign out' }).click();
    // Handoff may ask first; the person confirms.
    const home = (u) => u.origin === rp.url && u.pathname === '/';
    const confirm = page.getByRole('button', { name: /Sign out/ });
    await Promise.race([page.waitForURL(home, { timeout: 15_000 }), confirm.waitFor({ state: 'visible', timeout: 15_000 })]);
    if (!home(new URL(page.url()))) {
      await t.screenshot('oidc-d1-handoff-sign-out');
      await confirm.click();
      await page.waitForURL(home, { timeout: 15_000 });
    }
    await seeText(page.locator('main'), 'You are signed out.');
    await t.screenshot('oidc-d2-app-signed-out');
    const session = await t.context.request.get(`${server.baseUrl}/api/v1/session`);
    assert.equal(session.status(), 401, 'the Handoff session is over too');
    assert.deepEqual(t.pageErrors, [], 'no script errors');
  });
});
