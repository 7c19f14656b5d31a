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

import { launchChromium, playerState, trackProblems } from '../lib/browser.mjs';
import { installHeldFfmpeg } from '../lib/held_ffmpeg.mjs';
import {
  getVideo, makeTestVideo, startWeb, uploadFile, waitFor, waitForStatus,
} from '../lib/streamgrid.mjs';

const TIMEOUT_MS = 120_000; // generous: a loaded 2-core machine

let tmp;
let ffmpeg;  // the held ffmpeg (tests/lib/held_ffmpeg.mjs)
let web;
let context;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamgrid-playable-'));
  ffmpeg = await installHeldFfmpeg(path.join(tmp, 'bin'), { realtime: true });
  web = await startWeb({ env: ffmpeg.env });
  context = await launchChromium(path.join(tmp, 'chromium-profile'));
});

after(async () => {
  await context?.close().catch(() => {});
  await web?.stop().catch(() => {});
  if (web?.dataDir) fs.rmSync(web.dataDir, { recursive: true, force: true });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

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
    const problems = trackProblems(page, { consoleErrors: false, failedRequests: false });
    const apiRequests = [];
    page.on('request', (request) => {
      if (request.url().endsWith(`/api/videos/${id}`)) apiRequests.push(request.headers());
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

    await ffmpeg.release();
    await waitForStatus(web.url, id, 'ready', TIMEOUT_MS);
    mark('ready');
    // The page follows the record by long polls: after its first read, each
    // request names the version it has and waits for the next.
    await waitInPage(page, () => window.streamgridPlayer.status === 'ready', null,
      'the page to hear that the video is ready');
    assert.ok(apiRequests.length >= 2, `${apiRequests.length} requests`);
    for (const headers of apiRequests.slice(1)) {
      assert.match(headers['if-none-match'] ?? '', /^"[0-9a-f]{16}"$/);
      assert.equal(headers.prefer, 'wait=25');
    }
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
