/**
 * The operator dashboard in a real browser, on data made the way real traffic is made:
 * `handoff simulate --demo` plays a few hundred sign-ins (with planted failures) against
 * the server through its HTTP API and writes the ground truth, one JSON line per journey.
 * Short lifetimes (QR codes and idle journeys: 3 s) let the server diagnose the planted
 * failures quickly; the rate limits are raised so the simulation is never throttled.
 *
 * Then, like an operator:
 * - sign in through the form with the operator token (no console errors on any page);
 * - the overview shows each flow's funnel as an SVG chart with bars (screenshot in
 *   `artifacts/dashboard.png`) and passes axe's WCAG A/AA rules, also on a phone-sized
 *   screen without sideways scrolling;
 * - search by the identifier of one planted failure the server diagnosed as planted, open
 *   that journey's timeline, and read the planted root cause and its action there;
 * - sign out.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { axeViolations, launchBrowser, openPage, serverBinary, startServer } from '../lib/harness.mjs';

const TOKEN = 'e2e-dashboard-operator-token-0123456789';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** GET an operator API endpoint as JSON. */
async function operatorGet(server, pathAndQuery) {
  const res = await fetch(`${server.baseUrl}${pathAndQuery}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`GET ${pathAndQuery} answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Runs `handoff simulate --demo` against the server; resolves with its output once it exits. */
function simulate(server, truthPath) {
  const args = ['simulate', '--demo', '--url', server.baseUrl, '--truth', truthPath, '--operator-token', TOKEN, '--quiet'];
  return new Promise((resolve, reject) => {
    const child = spawn(serverBinary(), args, {
      env: { ...process.env, HANDOFF_DATA_DIR: server.dataDir, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

/** Every journey the server has, by id (the search API, 200 a page). */
async function allJourneys(server) {
  const byId = new Map();
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: '200' });
    if (cursor) q.set('cursor', cursor);
    const page = await operatorGet(server, `/api/v1/journeys?${q}`);
    for (const j of page.journeys) byId.set(j.journeyId, j);
    cursor = page.next ?? null;
  } while (cursor);
  return byId;
}

describe('operator dashboard', { timeout: 420_000 }, () => {
  let server;
  let browser;
  let tmp;
  /** One planted failure the server diagnosed as planted: its truth line and the API's view. */
  let chosen;

  before(async () => {
    server = await startServer({
      name: 'server-dashboard',
      env: {
        HANDOFF_OPERATOR_TOKEN: TOKEN,
        HANDOFF_QR_TTL_SECONDS: '3',
        HANDOFF_JOURNEY_IDLE_SECONDS: '3',
        HANDOFF_QR_CREATE_PER_MINUTE: '10000',
        HANDOFF_EVENTS_PER_MINUTE: '100000',
        HANDOFF_LOGIN_START_PER_MINUTE: '100000',
        HANDOFF_LOGIN_START_PER_IDENTIFIER: '100000',
        HANDOFF_REGISTRATION_START_PER_MINUTE: '100000',
        HANDOFF_REGISTRATION_START_PER_IDENTIFIER: '100000',
      },
    });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'handoff-dashboard-'));
    const truthPath = path.join(tmp, 'truth.jsonl');
    const run = await simulate(server, truthPath);
    assert.equal(run.code, 0, `handoff simulate failed (${run.code ?? run.signal}):\n${run.output}\n${server.log().slice(-4000)}`);
    const truth = readFileSync(truthPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    const planted = truth.filter((t) => t.planted && t.planted !== 'success');
    assert.ok(planted.length > 0, `the simulation planted failures:\n${run.output}`);

    // The planted failures are diagnosed once each journey is idle for 3 s.
    const deadline = Date.now() + 120_000;
    let open = planted;
    for (;;) {
      const journeys = await allJourneys(server);
      open = planted.filter((t) => journeys.get(t.journeyId)?.state !== 'finished');
      if (open.length === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`${open.length} of ${planted.length} planted failures still undiagnosed, e.g. ${JSON.stringify(open[0])}`);
      }
      await sleep(1_000);
    }
    // Read them the way the brief's operator would: by root cause.
    const codes = [...new Set(planted.map((t) => t.planted))];
    const diagnosed = new Map();
    for (const code of codes) {
      const page = await operatorGet(server, `/api/v1/journeys?rootCause=${encodeURIComponent(code)}&limit=200`);
      for (const j of page.journeys) diagnosed.set(j.journeyId, j);
    }
    const hits = planted.filter((t) => diagnosed.get(t.journeyId)?.rootCause?.code === t.planted);
    assert.ok(
      hits.length > 0,
      `no planted failure was diagnosed as planted (planted: ${codes.join(', ')}; ${planted.length} journeys)`,
    );
    // Prefer a cause with an observed phase and an inferred one on its timeline; any hit will do.
    const truthLine = hits.find((t) => t.identifier) ?? hits[0];
    chosen = { truth: truthLine, view: await operatorGet(server, `/api/v1/journeys/${truthLine.journeyId}`) };
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('signs in with the token, charts the funnels and leads from a search to the root cause and its action', async () => {
    const ui = await openPage(browser, { authenticator: false });
    const { page } = ui;

    // Not signed in: the sign-in form, explaining where the token is.
    await page.goto(`${server.baseUrl}/dashboard`);
    await page.getByRole('heading', { name: 'Sign in to the dashboard' }).waitFor();
    assert.match(await page.locator('#token-help').innerText(), /HANDOFF_OPERATOR_TOKEN/);
    // A wrong token first: the form again, with the reason.
    await page.getByLabel('Operator token').fill('not-the-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    assert.match(await page.getByRole('alert').innerText(), /not this server's operator token/);
    ui.consoleErrors.length = 0; // the 403 of the refused sign-in is expected; nothing else may fail
    // The right one.
    await page.getByLabel('Operator token').fill(TOKEN);
    await Promise.all([page.waitForURL(`${server.baseUrl}/dashboard`), page.getByRole('button', { name: 'Sign in' }).click()]);
    await page.getByRole('heading', { level: 1, name: 'Sign-in overview' }).waitFor();

    // The funnel charts: SVG with bars, as wide as their box.
    const charts = page.locator('svg.chart[role="img"]');
    assert.ok((await charts.count()) >= 1, 'at least one chart');
    const firstChart = charts.first();
    await firstChart.waitFor({ state: 'visible' });
    const bars = firstChart.locator('rect[data-value]');
    assert.ok((await bars.count()) >= 4, 'the funnel has a bar per step');
    const box = await bars.first().boundingBox();
    assert.ok(box && box.width > 0 && box.height > 0, 'the first bar is drawn');
    assert.match(await firstChart.getAttribute('aria-label'), /^Funnel of the .+ flow, journeys reaching each step: /);
    const flowHeadings = await page.locator('section.flow h2').allInnerTexts();
    assert.ok(flowHeadings.includes(chosen.view.flow), `the ${chosen.view.flow} flow has a section: ${flowHeadings}`);
    await ui.screenshot('dashboard');
    const overviewViolations = (await axeViolations(page)).filter((v) => ['serious', 'critical'].includes(v.impact));
    assert.deepEqual(overviewViolations, [], 'the overview passes axe (serious and critical)');

    // Search by the identifier of a planted failure, then open its timeline.
    const { truth, view } = chosen;
    await page.getByLabel('Identifier (exact)').fill(truth.identifier);
    await Promise.all([page.waitForURL(/\/dashboard\/journeys\?/), page.getByRole('button', { name: 'Search journeys' }).click()]);
    await page.getByRole('heading', { name: 'Results' }).waitFor();
    const link = page.locator(`a[href="/dashboard/journeys/${truth.journeyId}"]`);
    await link.waitFor();
    await Promise.all([page.waitForURL(`${server.baseUrl}/dashboard/journeys/${truth.journeyId}`), link.click()]);
    await page.getByRole('heading', { name: 'Diagnosis' }).waitFor();
    const cause = await page.locator('.diagnosis .cause').innerText();
    assert.match(cause, new RegExp(`Root cause: ${truth.planted}\\b`), cause);
    assert.match(cause, /\b(observed|inferred)\b/);
    assert.equal((await page.locator('.diagnosis .action').innerText()).trim(), view.rootCause.action);
    // Phases are told apart in words, not by colour alone.
    const phaseLabels = await page.locator('.phase-label').allInnerTexts();
    assert.ok(phaseLabels.some((l) => l.startsWith('observed')), `an observed phase: ${phaseLabels}`);
    for (const label of phaseLabels) assert.match(label, /^(observed — |inferred — implied by |not reached — )/);
    assert.ok((await page.locator('table.events tbody tr').count()) >= 1, 'the events are listed');
    const timelineViolations = (await axeViolations(page)).filter((v) => ['serious', 'critical'].includes(v.impact));
    assert.deepEqual(timelineViolations, [], 'the timeline passes axe (serious and critical)');
    await ui.screenshot('dashboard-timeline');

    // A phone-sized screen: no sideways scrolling of the page (wide tables scroll in their box).
    await page.setViewportSize({ width: 390, height: 844 });
    for (const url of [`${server.baseUrl}/dashboard`, page.url()]) {
      await page.goto(url);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${url} scrolls sideways by ${overflow}px at 390px`);
    }

    // Signing out leads back to the form (the sign-out form's own post passes the CSRF check).
    await Promise.all([page.waitForURL(/\/dashboard\?signedOut=1$/), page.getByRole('button', { name: 'Sign out' }).click()]);
    await page.getByRole('heading', { name: 'Sign in to the dashboard' }).waitFor();
    assert.match(await page.getByRole('status').innerText(), /You have signed out/);
    assert.deepEqual(await ui.context.cookies(), [], 'the sign-in cookie is gone');

    assert.deepEqual(ui.pageErrors, []);
    assert.deepEqual(ui.consoleErrors, []);
    await ui.context.close();
  });
});
