// Shared set-up of the browser tests: Debian's Chromium (headless) through
// playwright-core, and a record of what went wrong in a tab.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from '../../web/node_modules/playwright-core/index.mjs';
import { buildDir } from './streamgrid.mjs';

const CHROMIUM = process.env.STREAMGRID_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/** A headless Chromium with its own fresh profile in `profileDir`; close() it at the end. */
export function launchChromium(profileDir) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
}

/**
 * Records in the returned array what goes wrong in `page`: uncaught
 * exceptions, console errors, HTTP errors for our own assets and, with
 * `failedRequests`, requests that failed (not aborted ones: players cancel
 * downloads when they switch).
 */
export function trackProblems(page, { consoleErrors = true, failedRequests = true } = {}) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  if (consoleErrors) {
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    });
  }
  page.on('response', (res) => {
    const url = new URL(res.url());
    if (res.status() >= 400 && /^\/(static|content|api)\//.test(url.pathname)) {
      problems.push(`HTTP ${res.status()} for ${url.pathname}`);
    }
  });
  if (failedRequests) {
    page.on('requestfailed', (req) => {
      const failure = req.failure()?.errorText || 'failed';
      if (!/ERR_ABORTED/.test(failure)) problems.push(`request ${req.url()}: ${failure}`);
    });
  }
  return problems;
}

/** What the page's player shows now: its engine and errors, and the <video> element's state. */
export function playerState(page) {
  return page.evaluate(() => {
    const v = document.getElementById('video');
    const p = window.streamgridPlayer || {};
    return {
      engine: p.engine,
      errors: p.errors ? [...p.errors] : null,
      startedWhileProcessing: p.startedWhileProcessing,
      currentTime: v.currentTime,
      firstPlayed: v.played.length > 0 ? v.played.start(0) : null,
      ended: v.ended,
      paused: v.paused,
      duration: v.duration,
      readyState: v.readyState,
      videoHeight: v.videoHeight,
      status: document.getElementById('status-text')?.textContent,
      state: document.getElementById('player-frame')?.getAttribute('data-state'),
    };
  });
}

/** Where screenshot `name` is kept for a person to look at: <build>/test-artifacts/browser-NAME.png. */
export function screenshotPath(name) {
  const artifacts = path.join(buildDir, 'test-artifacts');
  fs.mkdirSync(artifacts, { recursive: true });
  return path.join(artifacts, `browser-${name}.png`);
}

/** A length as the pages show it: "0:06", "1:02:03" ("0:00" for under half a second). */
export function clockTime(seconds) {
  const total = Math.round(seconds);
  const [h, m, s] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`;
}

/**
 * Mutes and plays the watch page's video (the autoplay flag makes play()
 * allowed without a gesture), once the engine has attached its source and the
 * first frame is there: a play() issued while the engine is still setting up
 * gets interrupted.
 */
export async function play(page, { timeoutMs = 30_000 } = {}) {
  try {
    await page.waitForFunction(
      () => window.streamgridPlayer && window.streamgridPlayer.engine &&
        document.getElementById('video').readyState >= 2,
      null,
      { timeout: timeoutMs, polling: 50 },
    );
  } catch (err) {
    throw new Error(`the player never got a first frame: ${JSON.stringify(await playerState(page))}`, {
      cause: err,
    });
  }
  await page.evaluate(async () => {
    const v = document.getElementById('video');
    v.muted = true;
    try {
      await v.play();
    } catch (err) {
      if (err.name !== 'AbortError') throw err;
      await v.play(); // interrupted by a (re)load: once more
    }
  });
}

/** Waits until the watch page's video has played past `seconds`. */
export async function waitForTime(page, seconds, { timeoutMs = 30_000 } = {}) {
  try {
    await page.waitForFunction(
      (s) => document.getElementById('video').currentTime > s,
      seconds,
      { timeout: timeoutMs, polling: 100 },
    );
  } catch (err) {
    throw new Error(`video did not play past ${seconds}s: ${JSON.stringify(await playerState(page))}`, {
      cause: err,
    });
  }
}
