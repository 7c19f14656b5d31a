// Shared set-up of the browser tests: Debian's Chromium (headless) through
// playwright-core, and a record of what went wrong in a tab.
import { chromium } from '../../web/node_modules/playwright-core/index.mjs';

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
