/**
 * Test harness for Handoff's real-browser tests.
 *
 * - `startServer()` runs the real `handoff serve` binary on a free port with a
 *   fresh data directory and waits for `/healthz`.
 * - `launchBrowser()` starts Debian's Chromium through playwright-core (no
 *   browser download) with the flags this closed, root-run machine needs.
 * - `openPage()` gives a page with a Chromium virtual WebAuthn authenticator
 *   attached through the DevTools WebAuthn domain.
 *
 * Nothing here calls the SDK: tests type and click like a person.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(here, '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..');
export const ARTIFACTS = path.join(E2E_DIR, 'artifacts');

/** The `handoff` binary to test: HANDOFF_BIN, else the release build in the usual target dirs. */
export function serverBinary() {
  if (process.env.HANDOFF_BIN) {
    if (!existsSync(process.env.HANDOFF_BIN)) throw new Error(`HANDOFF_BIN=${process.env.HANDOFF_BIN} does not exist`);
    return process.env.HANDOFF_BIN;
  }
  const candidates = [
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, 'release', 'handoff'),
    path.join(os.homedir(), '.cache', 'handoff-target', 'release', 'handoff'),
    path.join(REPO_DIR, 'target', 'release', 'handoff'),
  ].filter(Boolean);
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new Error(
      `No handoff binary found (looked at ${candidates.join(', ')}). ` +
        'Build it with `cargo build --release -p handoff-server` or set HANDOFF_BIN.',
    );
  }
  return found;
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start `handoff serve` on a free port with a fresh data dir.
 * @param {{name?: string, env?: Record<string,string>}} [options] `name` labels the log file in artifacts/
 * @returns {Promise<{baseUrl: string, port: number, dataDir: string, env: Record<string,string>, log: () => string, stop: () => Promise<void>}>}
 *   `env` is the server's environment, for {@link runHandoff} (same data dir, so the same database)
 */
export async function startServer({ name = 'server', env = {} } = {}) {
  const bin = serverBinary();
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'handoff-e2e-'));
  const baseUrl = `http://localhost:${port}`;
  let output = '';
  const serverEnv = {
    ...process.env,
    HANDOFF_DATA_DIR: dataDir,
    HANDOFF_LISTEN: `127.0.0.1:${port}`,
    HANDOFF_ORIGIN: baseUrl,
    HANDOFF_RP_ID: 'localhost',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    NO_COLOR: '1',
    ...env,
  };
  const child = spawn(bin, ['serve'], { env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));

  const saveLog = () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(path.join(ARTIFACTS, `${name}.log`), output);
  };
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitPromise;
      clearTimeout(timer);
    }
    saveLog();
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      saveLog();
      rmSync(dataDir, { recursive: true, force: true });
      throw new Error(`handoff serve exited early (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`handoff serve did not answer /healthz within 30 s:\n${output}`);
    }
    await sleep(100);
  }
  return { baseUrl, port, dataDir, env: serverEnv, log: () => output, stop };
}

/**
 * Run the `handoff` CLI (e.g. `clients add … --json`) with a running server's environment, so it
 * writes the same database. Returns its standard output; throws with its output if it fails.
 * @param {{env: Record<string,string>}} server from {@link startServer}
 * @param {string[]} args
 */
export function runHandoff(server, args) {
  try {
    return execFileSync(serverBinary(), args, { env: { ...server.env, RUST_LOG: 'warn' }, encoding: 'utf8', timeout: 30_000 });
  } catch (error) {
    throw new Error(`handoff ${args.join(' ')} failed (exit ${error.status}):\n${error.stdout ?? ''}${error.stderr ?? ''}`);
  }
}

/** The example relying party (examples/node-rp), with its npm dependencies installed once. */
export const NODE_RP_DIR = path.join(REPO_DIR, 'examples', 'node-rp');

/** `npm ci` in examples/node-rp unless its dependencies are already there (idempotent). */
export function installNodeRp() {
  if (existsSync(path.join(NODE_RP_DIR, 'node_modules', 'openid-client', 'package.json'))) return;
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: NODE_RP_DIR, stdio: 'inherit', timeout: 300_000 });
}

/**
 * Start examples/node-rp (`node server.mjs`) on `port` and wait for its "listening" line.
 * @param {{port: number, issuer: string, clientId: string, clientSecret?: string, name?: string}} options
 *   `name` labels the log file in artifacts/
 * @returns {Promise<{url: string, log: () => string, stop: () => Promise<void>}>}
 */
export async function startNodeRp({ port, issuer, clientId, clientSecret, name = 'node-rp' }) {
  installNodeRp();
  const url = `http://localhost:${port}`;
  const env = { ...process.env, HANDOFF_ISSUER: issuer, CLIENT_ID: clientId, PORT: String(port), APP_URL: url };
  if (clientSecret) env.CLIENT_SECRET = clientSecret;
  else delete env.CLIENT_SECRET;
  const child = spawn(process.execPath, ['server.mjs'], { cwd: NODE_RP_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  const saveLog = () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(path.join(ARTIFACTS, `${name}.log`), output);
  };
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await exitPromise;
    }
    saveLog();
  };
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node-rp did not start within 15 s:\n${output}`)), 15_000);
    const onData = (d) => {
      output += d;
      if (output.includes(`node-rp listening on ${url}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exitPromise.then(() => {
      clearTimeout(timer);
      reject(new Error(`node-rp exited early (${JSON.stringify(exited)}):\n${output}`));
    });
  }).catch(async (error) => {
    await stop();
    throw error;
  });
  return { url, log: () => output, stop };
}

/** Chromium flags for this machine: root (no sandbox), no GPU, closed network. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Launch Debian's Chromium (playwright-core creates a fresh temporary profile). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: process.env.HEADED ? false : true,
  });
}

/** Options for WebAuthn.addVirtualAuthenticator: a platform authenticator with UV, like Touch ID / Windows Hello. */
export const PLATFORM_AUTHENTICATOR = {
  protocol: 'ctap2',
  ctap2Version: 'ctap2_1',
  transport: 'internal',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
};

/**
 * Device identities for `Emulation.setUserAgentOverride`: the User-Agent header,
 * `navigator.userAgent`, the `Sec-CH-UA-*` request headers and
 * `navigator.userAgentData` all tell the same story.
 */
const BRANDS = [
  { brand: 'Chromium', version: '156' },
  { brand: 'Google Chrome', version: '156' },
  { brand: 'Not=A?Brand', version: '24' },
];
const FULL_VERSIONS = BRANDS.map((b) => ({ brand: b.brand, version: `${b.version}.0.0.0` }));
export const IDENTITIES = {
  /** Chrome on a Windows 11 desktop. */
  windowsDesktop: {
    userAgent:
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36',
    platform: 'Win32',
    userAgentMetadata: {
      brands: BRANDS,
      fullVersionList: FULL_VERSIONS,
      fullVersion: '156.0.0.0',
      platform: 'Windows',
      platformVersion: '15.0.0',
      architecture: 'x86',
      model: '',
      mobile: false,
      bitness: '64',
      wow64: false,
      formFactors: ['Desktop'],
    },
  },
  /** Chrome on an Android phone. */
  androidPhone: {
    userAgent:
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
    platform: 'Linux armv8l',
    userAgentMetadata: {
      brands: BRANDS,
      fullVersionList: FULL_VERSIONS,
      fullVersion: '156.0.0.0',
      platform: 'Android',
      platformVersion: '14.0.0',
      architecture: '',
      model: 'Pixel 8',
      mobile: true,
      bitness: '',
      wow64: false,
      formFactors: ['Mobile'],
    },
  },
};

/**
 * A new browser context and page with a virtual authenticator.
 *
 * The page also records, in `window.__webauthnCalls`, which WebAuthn calls it
 * made (`create` / `get` and the mediation), so a test can tell an autofill
 * sign-in from a modal one. It does not change what the calls do.
 *
 * @param {import('playwright-core').Browser} browser
 * @param {{viewport?: {width:number,height:number}, isMobile?: boolean, authenticator?: object|false, identity?: object}} [options]
 *   `authenticator: false` starts without one; `identity` is one of {@link IDENTITIES}.
 */
export async function openPage(
  browser,
  { viewport = { width: 1280, height: 900 }, isMobile = false, authenticator = {}, identity } = {},
) {
  const context = await browser.newContext({ viewport, isMobile, hasTouch: isMobile, deviceScaleFactor: 1 });
  await context.addInitScript(() => {
    window.__webauthnCalls = [];
    const creds = navigator.credentials;
    if (!creds) return;
    const get = creds.get.bind(creds);
    const create = creds.create.bind(creds);
    creds.get = (options) => {
      window.__webauthnCalls.push({ op: 'get', mediation: options?.mediation ?? 'optional' });
      return get(options);
    };
    creds.create = (options) => {
      window.__webauthnCalls.push({ op: 'create', mediation: options?.mediation ?? 'optional' });
      return create(options);
    };
  });
  const page = await context.newPage();
  const pageErrors = [];
  const consoleErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  const cdp = await context.newCDPSession(page);
  if (identity) await cdp.send('Emulation.setUserAgentOverride', identity);
  await cdp.send('WebAuthn.enable');
  const authenticatorId =
    authenticator === false
      ? undefined
      : (await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { ...PLATFORM_AUTHENTICATOR, ...authenticator } }))
          .authenticatorId;

  /** Requests the page sent to /api/v1, with their JSON bodies. */
  const apiCalls = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!url.pathname.startsWith('/api/v1/')) return;
    let body;
    try {
      body = request.postDataJSON();
    } catch {
      body = request.postData();
    }
    apiCalls.push({ method: request.method(), path: url.pathname, body });
  });

  return {
    context,
    page,
    cdp,
    authenticatorId,
    apiCalls,
    pageErrors,
    consoleErrors,
    /** Credentials on an authenticator (default: the first). */
    async credentials(id = authenticatorId) {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId: id });
      return credentials;
    },
    /** Turn "the user touches the authenticator" on or off. */
    async presence(enabled, id = authenticatorId) {
      await cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: id, enabled });
    },
    async addAuthenticator(options = {}) {
      const res = await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { ...PLATFORM_AUTHENTICATOR, ...options } });
      return res.authenticatorId;
    },
    /** How many conditional-mediation (autofill) requests the page has made so far. */
    async conditionalRequests() {
      return page.evaluate(() => window.__webauthnCalls.filter((c) => c.mediation === 'conditional').length);
    },
    /**
     * Wait until the page has made more than `count` autofill requests, then give the browser a
     * moment to hand the request to the authenticator. Used before switching presence back on,
     * so a request made after a sign-out is the one the "user" ignores.
     */
    async waitForConditionalRequest(count) {
      await page.waitForFunction(
        (n) => window.__webauthnCalls.filter((c) => c.mediation === 'conditional').length > n,
        count,
        { timeout: 10_000 },
      );
      await page.waitForTimeout(500);
    },
    async screenshot(name) {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    },
  };
}

/** DevTools returns credential ids as standard base64; the API and page use base64url. */
export function cdpIdToBase64url(id) {
  return Buffer.from(id, 'base64').toString('base64url');
}

/**
 * Run axe-core (WCAG 2.x A/AA rules) on the page as it is now and return the violations.
 * The script is evaluated through DevTools, so the page's CSP stays as strict as in production.
 * @param {import('playwright-core').Page} page
 */
export async function axeViolations(page) {
  const source = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
  }));
}
