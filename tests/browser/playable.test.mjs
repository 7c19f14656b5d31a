// Browser test of a video watched while it is still being encoded: the real
// streamgrid-web (single mode), the real ffmpeg behind a wrapper, Debian's
// Chromium (headless) through playwright-core. Run with `node --test
// tests/browser/playable.test.mjs` (ctest does, with STREAMGRID_BUILD_DIR set).
//
// The wrapper reads the source at real-time speed (-re) and, after the encode,
// holds on (bounded) until the test writes "release": the video is
// `processing` but `playable` for as long as the test needs. The page must play
// it with hls.js from the start (not from the live edge of the growing
// playlists), then carry on to the end once the final playlists replace them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from '../../web/node_modules/playwright-core/index.mjs';
import {
  getVideo, makeTestVideo, run, startWeb, uploadFile, waitFor, waitForStatus,
} from '../lib/streamgrid.mjs';

const CHROMIUM = process.env.STREAMGRID_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];
const TIMEOUT_MS = 120_000; // generous: a loaded 2-core machine

let tmp;
let binDir;
let web;
let context;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamgrid-playable-'));
  binDir = path.join(tmp, 'bin');
  fs.mkdirSync(binDir);
  const realFfmpeg = (await run('sh', ['-c', 'command -v ffmpeg'])).trim();
  fs.writeFileSync(path.join(binDir, 'ffmpeg'), [
    '#!/bin/sh',
    'case "$*" in *manifest.mpd*)',
    `  '${realFfmpeg}' -re "$@"; rc=$?`,
    `  i=0; while [ ! -e '${binDir}/release' ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i+1)); done`,
    '  exit $rc ;;',
    'esac',
    `exec '${realFfmpeg}' "$@"`,
    '',
  ].join('\n'), { mode: 0o755 });
  web = await startWeb({ env: { PATH: `${binDir}:${process.env.PATH}` } });
  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
});

after(async () => {
  await context?.close().catch(() => {});
  await web?.stop().catch(() => {});
  if (web?.dataDir) fs.rmSync(web.dataDir, { recursive: true, force: true });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function playerState(page) {
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
      duration: v.duration,
      readyState: v.readyState,
      state: document.getElementById('player-frame')?.getAttribute('data-state'),
    };
  });
}

async function waitInPage(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: TIMEOUT_MS, polling: 100 });
  } catch (err) {
    throw new Error(`${what}: ${JSON.stringify(await playerState(page))}\n${web.log()}`, { cause: err });
  }
}

test('a processing but playable video plays from the start, then on into the final playlists',
  { timeout: 600_000 }, async (t) => {
    const t0 = Date.now();
    const mark = (what) => t.diagnostic(`${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const file = await makeTestVideo(path.join(tmp, 'clip.mp4'),
      { width: 640, height: 360, seconds: 12, audio: true });
    const upload = await uploadFile(web.url, file);
    assert.equal(upload.status, 202, JSON.stringify(upload.json));
    const id = upload.json.id;
    await waitFor(async () => (await getVideo(web.url, id))?.playable === true,
      { timeoutMs: TIMEOUT_MS, intervalMs: 100, what: 'the video to be playable' });
    mark('playable');

    const page = await context.newPage();
    t.after(() => page.close().catch(() => {}));
    const problems = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('response', (res) => {
      const url = new URL(res.url());
      if (res.status() >= 400 && /^\/(static|content|api)\//.test(url.pathname)) {
        problems.push(`HTTP ${res.status()} for ${url.pathname}`);
      }
    });
    await page.goto(`${web.url}/videos/${id}`);
    await waitInPage(page, () => window.streamgridPlayer && window.streamgridPlayer.engine &&
      document.getElementById('video').readyState >= 2, null, 'a first frame');
    await page.evaluate(async () => {
      const v = document.getElementById('video');
      v.muted = true;
      try {
        await v.play();
      } catch (err) {
        if (err.name !== 'AbortError') throw err;
        await v.play();
      }
    });
    await waitInPage(page, () => document.getElementById('video').currentTime > 2, null,
      'playing past 2 s');
    mark('played past 2 s');
    let s = await playerState(page);
    assert.equal(s.engine, 'hls', 'a video still encoding plays through hls.js');
    assert.equal(s.startedWhileProcessing, true);
    assert.ok(s.firstPlayed !== null && s.firstPlayed < 0.5,
      `played from the start, not the live edge: ${JSON.stringify(s)}`);
    assert.deepEqual(s.errors, []);
    assert.equal((await getVideo(web.url, id)).status, 'processing', 'watched while processing');

    fs.writeFileSync(path.join(binDir, 'release'), 'go');
    await waitForStatus(web.url, id, 'ready', TIMEOUT_MS);
    mark('ready');
    // Same URLs: hls.js reloads the playlists, finds them ended (VOD) and plays
    // to the end of the video.
    await waitInPage(page, () => document.getElementById('video').ended, null, 'the end');
    mark('ended');
    s = await playerState(page);
    assert.ok(s.currentTime > 11, `played to the end: ${JSON.stringify(s)}`);
    assert.ok(Math.abs(s.duration - 12) < 0.6, `duration ${s.duration}`);
    assert.deepEqual(s.errors, []);
    assert.deepEqual(problems, []);
  });
