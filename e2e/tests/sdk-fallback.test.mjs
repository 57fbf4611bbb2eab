/**
 * The SDK in a browser without the WebAuthn JSON helpers
 * (`PublicKeyCredential.parseCreationOptionsFromJSON`,
 * `parseRequestOptionsFromJSON`, `credential.toJSON()` — missing in older
 * Safari and Firefox): the hand-written base64url fallback must produce W3C
 * JSON that the real server accepts, for sign-up and sign-in.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openPage, startServer } from '../lib/harness.mjs';

describe('SDK without the browser JSON helpers', { timeout: 120_000 }, () => {
  let server;
  let browser;
  let t;

  before(async () => {
    server = await startServer({ name: 'server-sdk-fallback' });
    browser = await launchBrowser();
    t = await openPage(browser);
    await t.context.addInitScript(() => {
      delete PublicKeyCredential.parseCreationOptionsFromJSON;
      delete PublicKeyCredential.parseRequestOptionsFromJSON;
      delete PublicKeyCredential.prototype.toJSON;
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('signs up and signs in with the hand-written encoding', async () => {
    const { page } = t;
    await page.goto(server.baseUrl);
    assert.equal(await page.evaluate(() => typeof PublicKeyCredential.prototype.toJSON), 'undefined');
    assert.equal(await page.evaluate(() => typeof PublicKeyCredential.parseRequestOptionsFromJSON), 'undefined');

    await page.fill('#signup-identifier', 'lin@example.com');
    await page.click('#signup-submit');
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    assert.match(await page.locator('#status').innerText(), /Account created/);

    const reg = t.apiCalls.find((c) => c.path === '/api/v1/passkeys/registration/finish').body.credential;
    assert.deepEqual(Object.keys(reg).sort(), ['authenticatorAttachment', 'clientExtensionResults', 'id', 'rawId', 'response', 'type']);
    assert.equal(reg.id, reg.rawId);
    assert.match(reg.id, /^[A-Za-z0-9_-]+$/, 'base64url without padding');
    assert.deepEqual(reg.response.transports, ['internal']);
    for (const key of ['clientDataJSON', 'attestationObject', 'authenticatorData', 'publicKey']) {
      assert.match(reg.response[key], /^[A-Za-z0-9_-]+$/, `response.${key} is base64url`);
    }
    assert.equal(typeof reg.response.publicKeyAlgorithm, 'number');
    const clientData = JSON.parse(Buffer.from(reg.response.clientDataJSON, 'base64url').toString());
    assert.equal(clientData.type, 'webauthn.create');
    assert.equal(clientData.origin, server.baseUrl);

    // Sign out (ignoring autofill), then identifier-first sign-in.
    await t.presence(false);
    const autofills = await t.conditionalRequests();
    await page.click('#signout');
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    await t.waitForConditionalRequest(autofills);
    await t.presence(true);
    assert.equal(await page.locator('#signin-title').isVisible(), true, 'still signed out');
    await page.fill('#identifier', 'lin@example.com');
    await page.click('#signin-continue');
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    assert.match(await page.locator('#status').innerText(), /Signed in/);

    const auth = t.apiCalls.find((c) => c.path === '/api/v1/login/finish').body.credential;
    assert.deepEqual(Object.keys(auth.response).sort(), ['authenticatorData', 'clientDataJSON', 'signature', 'userHandle']);
    assert.equal(auth.id, reg.id);
    assert.equal(auth.authenticatorAttachment, 'platform');
    assert.deepEqual(auth.clientExtensionResults, {});
    assert.deepEqual(t.pageErrors, []);
  });
});
