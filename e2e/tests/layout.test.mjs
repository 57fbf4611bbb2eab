/**
 * The demo page on a 390 px phone and keyboard-only: nothing overflows
 * sideways, every control is reachable with Tab and visibly focused, and a
 * person can create an account without a mouse.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { axeViolations, launchBrowser, openPage, startServer } from '../lib/harness.mjs';

describe('demo page: phone layout and keyboard', { timeout: 120_000 }, () => {
  let server;
  let browser;
  let t;

  before(async () => {
    server = await startServer({ name: 'server-layout' });
    browser = await launchBrowser();
    t = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function noSidewaysScroll() {
    const { scrollWidth, clientWidth } = await t.page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
    assert.ok(scrollWidth <= clientWidth, `page is ${scrollWidth}px wide in a ${clientWidth}px viewport`);
  }

  it('fits a 390 px phone and can be used with the keyboard alone', async () => {
    const { page } = t;
    await page.goto(server.baseUrl);
    await page.locator('#signin-title').waitFor({ state: 'visible' });
    await noSidewaysScroll();
    assert.deepEqual(await axeViolations(page), [], 'axe finds no WCAG A/AA problems on the sign-in page');
    await t.screenshot('phone-01-signed-out');

    // Tab order reaches the sign-up fields; each focused control shows a visible outline.
    const reached = [];
    for (let i = 0; i < 12 && !reached.includes('signup-identifier'); i++) {
      await page.keyboard.press('Tab');
      const info = await page.evaluate(() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return { id: el.id, outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 };
      });
      reached.push(info.id);
      if (['identifier', 'signin-continue', 'signin-passkey', 'signup-identifier'].includes(info.id)) {
        assert.ok(info.outline, `#${info.id} shows a focus outline`);
      }
    }
    for (const id of ['identifier', 'signin-continue', 'signin-passkey', 'signup-identifier']) {
      assert.ok(reached.includes(id), `Tab reaches #${id} (reached: ${reached.join(', ')})`);
    }
    assert.ok(reached.indexOf('identifier') < reached.indexOf('signin-continue'));

    // Keyboard-only sign-up: type, Tab, type, Enter.
    await page.keyboard.type('grace@example.com');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'signup-name');
    await page.keyboard.type('Grace Hopper');
    await page.keyboard.press('Enter');
    await page.locator('#account').waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal(await page.locator('#account-identifier').innerText(), 'grace@example.com');
    // Focus moved to the account heading, so a screen reader user hears where they are.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'account-title');
    assert.equal(await page.locator('#passkey-list > li').count(), 1);
    // No AAGUID list on this server: the provider is unknown, shown with a neutral letter avatar.
    assert.equal((await page.locator('#passkey-list .passkey-name').innerText()).trim(), 'Unknown passkey provider');
    assert.equal((await page.locator('#passkey-list .avatar').innerText()).trim(), '?');
    await noSidewaysScroll();
    assert.deepEqual(await axeViolations(page), [], 'axe finds no WCAG A/AA problems on the account page');
    await t.screenshot('phone-02-account');

    // The delete confirmation, opened and cancelled from the keyboard.
    await page.locator('.passkey-delete').focus();
    await page.keyboard.press('Enter');
    await page.locator('#delete-dialog').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => document.activeElement.id), 'delete-cancel', 'focus starts on the safe choice');
    assert.deepEqual(await axeViolations(page), [], 'axe finds no problems in the dialog');
    await page.keyboard.press('Enter');
    await page.locator('#delete-dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#passkey-list > li').count(), 1, 'cancel kept the passkey');
    assert.ok(await page.evaluate(() => document.activeElement.classList.contains('passkey-delete')), 'focus returns to the Delete button');

    // The status line is a polite live region with the outcome in words.
    assert.equal(await page.locator('#status').getAttribute('role'), 'status');
    assert.match(await page.locator('#status').innerText(), /Account created/);
  });

  it('ran without script errors', () => {
    assert.deepEqual(t.pageErrors, []);
  });
});
