// Browser test of the watch page's seek-bar previews (issue 11): the real
// streamgrid-web (single mode), real ffmpeg making the storyboard in the
// ladder run, Debian's Chromium (headless) through playwright-core. Run with
// `node --test tests/browser/storyboard.test.mjs` (ctest does, with
// STREAMGRID_BUILD_DIR set).
//
// A screenshot of the hover preview lands in <build>/test-artifacts/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { clockTime, launchChromium, playerState, screenshotPath, trackProblems } from '../lib/browser.mjs';
import {
  makeTestVideo, probe, startWeb, uploadFile, waitForStatus,
} from '../lib/streamgrid.mjs';

const READY_TIMEOUT_MS = 180_000; // upload + transcode on a slow, busy machine
const PAGE_TIMEOUT_MS = 30_000;

// "00:00:02.000" -> 2. Hours are optional in WebVTT.
function vttSeconds(text) {
  const m = /^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$/.exec(text.trim());
  assert.ok(m, `a WebVTT timestamp: ${JSON.stringify(text)}`);
  return Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

// The cues of a storyboard track: [{start, end, image, x, y, w, h}].
function parseVtt(text) {
  assert.match(text, /^WEBVTT\r?\n/, 'starts with the WEBVTT header');
  const cues = [];
  for (const block of text.split(/\r?\n\r?\n/).slice(1)) {
    if (!block.trim()) continue;
    const lines = block.trim().split(/\r?\n/);
    const timing = lines.find((l) => l.includes('-->'));
    assert.ok(timing, `a cue with a timing line: ${JSON.stringify(block)}`);
    const [from, to] = timing.split('-->');
    const payload = lines[lines.indexOf(timing) + 1];
    const m = /^([^#]+)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(payload || '');
    assert.ok(m, `a cue naming a tile: ${JSON.stringify(payload)}`);
    cues.push({ start: vttSeconds(from), end: vttSeconds(to), image: m[1],
      x: +m[2], y: +m[3], w: +m[4], h: +m[5] });
  }
  return cues;
}

describe('storyboard previews', { timeout: 600_000 }, () => {
  let web;
  let tmp;
  let context;
  let video; // the API's JSON for the uploaded test video
  let cues; // its storyboard track's cues
  let sheet; // {width, height} of its sprite sheet, as ffprobe reads the file

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamgrid-storyboard-'));
    web = await startWeb();
    const clip = await makeTestVideo(path.join(tmp, 'clip.mp4'),
      { width: 640, height: 360, seconds: 8, audio: true });
    const upload = await uploadFile(web.url, clip);
    assert.equal(upload.status, 202, JSON.stringify(upload.json));
    video = await waitForStatus(web.url, upload.json.id, 'ready', READY_TIMEOUT_MS);
    context = await launchChromium(path.join(tmp, 'chromium-profile'));
  }, { timeout: READY_TIMEOUT_MS + 60_000 });

  after(async () => {
    await context?.close().catch(() => {});
    await web?.stop().catch(() => {});
    if (web?.dataDir) fs.rmSync(web.dataDir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function openPlayer(t, id) {
    const page = await context.newPage();
    const problems = trackProblems(page);
    t.after(() => page.close().catch(() => {}));
    await page.goto(`${web.url}/videos/${id}`);
    try {
      await page.waitForFunction(() => {
        const bar = document.getElementById('seek');
        return bar && !bar.hidden && document.getElementById('video').duration > 0;
      }, null, { timeout: PAGE_TIMEOUT_MS, polling: 100 });
    } catch (err) {
      throw new Error(`no seek bar: ${JSON.stringify(await playerState(page))}`, { cause: err });
    }
    return { page, problems };
  }

  // Moves the mouse over the seek bar at `fraction` of its width.
  async function hover(page, fraction) {
    const box = await page.locator('#seek').boundingBox();
    await page.mouse.move(box.x + box.width * fraction, box.y + box.height / 2);
    return box;
  }

  test('the storyboard files are served with the right types and describe the video', async () => {
    assert.equal(video.storyboard_url, `/content/${video.id}/storyboard.vtt`);
    const res = await fetch(web.url + video.storyboard_url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/vtt; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    cues = parseVtt(await res.text());

    const image = await fetch(`${web.url}/content/${video.id}/storyboard.jpg`);
    assert.equal(image.status, 200);
    assert.equal(image.headers.get('content-type'), 'image/jpeg');
    assert.equal(image.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const file = path.join(tmp, 'storyboard.jpg');
    fs.writeFileSync(file, Buffer.from(await image.arrayBuffer()));
    const stream = (await probe(file)).streams[0];
    assert.equal(stream.codec_name, 'mjpeg');
    sheet = { width: stream.width, height: stream.height };

    // Cues cover the video from 0 to its end without gaps, each a tile of
    // the sheet (the one sheet, named relative to the track).
    assert.ok(cues.length >= 2, `cues: ${cues.length}`);
    assert.equal(cues[0].start, 0);
    for (let i = 1; i < cues.length; i++) assert.equal(cues[i].start, cues[i - 1].end, `cue ${i} follows on`);
    assert.ok(Math.abs(cues.at(-1).end - video.duration) < 0.01,
      `the last cue ends at the duration: ${cues.at(-1).end} vs ${video.duration}`);
    for (const cue of cues) {
      assert.equal(cue.image, 'storyboard.jpg');
      assert.ok(cue.w > 0 && cue.h > 0, JSON.stringify(cue));
      assert.ok(cue.x + cue.w <= sheet.width && cue.y + cue.h <= sheet.height,
        `tile ${JSON.stringify(cue)} within the ${sheet.width}x${sheet.height} sheet`);
      // The display aspect ratio of the 16:9 source.
      assert.ok(Math.abs(cue.w / cue.h - 16 / 9) < 0.05, JSON.stringify(cue));
    }
    // Distinct tiles, one per cue.
    assert.equal(new Set(cues.map((c) => `${c.x},${c.y}`)).size, cues.length);
  });

  test('hovering the seek bar shows that moment\'s tile and time; clicking seeks', async (t) => {
    assert.ok(cues, 'the track was read by the previous test');
    const { page, problems } = await openPlayer(t, video.id);

    // Every tile of the sheet has a picture (testsrc2 is never black), the
    // last ones included: the sheet is the real one, not the blank first frame.
    const dark = await page.evaluate(async ({ url, tiles }) => {
      const img = new Image();
      img.src = url;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const g = canvas.getContext('2d');
      g.drawImage(img, 0, 0);
      return tiles.filter((c) => {
        const { data } = g.getImageData(c.x, c.y, c.w, c.h);
        let sum = 0;
        for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
        return sum / (data.length / 4) / 3 < 20;
      });
    }, { url: `/content/${video.id}/storyboard.jpg`, tiles: cues });
    assert.deepEqual(dark, [], 'no black tiles');

    await hover(page, 0.5);
    await page.waitForFunction(() => {
      const img = document.getElementById('seek-preview-image');
      return !document.getElementById('seek-preview').hidden && !img.hidden &&
        /storyboard\.jpg/.test(img.style.backgroundImage);
    }, null, { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    const shown = await page.evaluate(() => {
      const preview = document.getElementById('seek-preview');
      const img = document.getElementById('seek-preview-image');
      const r = img.getBoundingClientRect();
      return {
        time: Number(preview.getAttribute('data-time')),
        label: document.getElementById('seek-preview-time').textContent,
        background: img.style.backgroundImage,
        position: getComputedStyle(img).backgroundPosition,
        width: r.width,
        height: r.height,
        duration: document.getElementById('video').duration,
      };
    });
    // Half way along the bar is half way through the video (a pixel either side).
    assert.ok(Math.abs(shown.time - shown.duration / 2) < shown.duration / 100 + 0.05,
      `hovered time ${shown.time} of ${shown.duration}`);
    assert.equal(shown.label, clockTime(shown.time));
    assert.match(shown.background, new RegExp(`/content/${video.id}/storyboard\\.jpg`));
    const cue = cues.find((c) => shown.time >= c.start && shown.time < c.end);
    assert.ok(cue, `a cue covers ${shown.time}`);
    assert.equal(shown.position, `${-cue.x}px ${-cue.y}px`);
    assert.deepEqual([shown.width, shown.height], [cue.w, cue.h]);

    // The sheet is loaded before the picture is taken.
    await page.evaluate(async (url) => {
      const img = new Image();
      img.src = url;
      await img.decode();
    }, `/content/${video.id}/storyboard.jpg`);
    await page.screenshot({ path: screenshotPath('storyboard-hover'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('storyboard-hover')}`);

    // Another spot, another tile.
    await hover(page, 0.1);
    await page.waitForFunction(
      (half) => Number(document.getElementById('seek-preview').getAttribute('data-time')) < half,
      shown.duration / 4, { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    const early = await page.evaluate(() => getComputedStyle(
      document.getElementById('seek-preview-image')).backgroundPosition);
    assert.notEqual(early, shown.position);

    // Leaving the bar hides the preview; a click seeks.
    await page.mouse.move(5, 5);
    await page.waitForFunction(() => document.getElementById('seek-preview').hidden, null,
      { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    const box = await page.locator('#seek').boundingBox();
    await page.mouse.click(box.x + box.width * 0.25, box.y + box.height / 2);
    await page.waitForFunction((d) => Math.abs(document.getElementById('video').currentTime - d / 4) < 0.5,
      shown.duration, { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    const now = Number(await page.locator('#seek').getAttribute('aria-valuenow'));
    assert.ok(Math.abs(now - shown.duration / 4) <= 1, `the slider's value follows: ${now}`);

    assert.deepEqual((await playerState(page)).errors, []);
    assert.deepEqual(problems, []);
  });

  test('at a phone\'s width the preview stays on the screen, and a finger can scrub', async (t) => {
    const { page, problems } = await openPlayer(t, video.id);
    await page.setViewportSize({ width: 390, height: 844 });
    for (const fraction of [0.995, 0.005]) {
      await hover(page, fraction);
      await page.waitForFunction(() => !document.getElementById('seek-preview-image').hidden, null,
        { timeout: PAGE_TIMEOUT_MS, polling: 50 });
      const fit = await page.evaluate(() => {
        const r = document.getElementById('seek-preview').getBoundingClientRect();
        return { left: r.left, right: r.right, viewport: window.innerWidth,
          page: document.documentElement.scrollWidth };
      });
      assert.ok(fit.left >= 0 && fit.right <= fit.viewport, `preview within the screen: ${JSON.stringify(fit)}`);
      assert.ok(fit.page <= fit.viewport, `no sideways scrolling: ${JSON.stringify(fit)}`);
    }
    await page.screenshot({ path: screenshotPath('storyboard-phone') });
    t.diagnostic(`screenshot: ${screenshotPath('storyboard-phone')}`);

    // A finger: touching the bar and sliding along shows the preview while it
    // moves; lifting it seeks there and hides the preview.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 1 });
    const box = await page.locator('#seek').boundingBox();
    const y = box.y + box.height / 2;
    const touch = (type, fraction) => cdp.send('Input.dispatchTouchEvent', {
      type, touchPoints: type === 'touchEnd' ? [] : [{ x: box.x + box.width * fraction, y }],
    });
    await page.mouse.move(5, 5); // the mouse's preview goes away first
    await page.waitForFunction(() => document.getElementById('seek-preview').hidden, null,
      { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    await touch('touchStart', 0.6);
    await touch('touchMove', 0.7);
    await touch('touchMove', 0.75);
    await page.waitForFunction(() => {
      const p = document.getElementById('seek-preview');
      return !p.hidden && !document.getElementById('seek-preview-image').hidden &&
        Number(p.getAttribute('data-time')) > 0.7 * document.getElementById('video').duration;
    }, null, { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    await touch('touchEnd');
    await page.waitForFunction(() => {
      const v = document.getElementById('video');
      return document.getElementById('seek-preview').hidden &&
        Math.abs(v.currentTime - 0.75 * v.duration) < 0.5;
    }, null, { timeout: PAGE_TIMEOUT_MS, polling: 50 }).catch(async (err) => {
      throw new Error(`after the touch: ${JSON.stringify(await playerState(page))}`, { cause: err });
    });
    assert.deepEqual(problems, []);
  });

  test('a video whose storyboard files are missing shows the time only', async (t) => {
    const clip = await makeTestVideo(path.join(tmp, 'old.mp4'),
      { width: 320, height: 180, seconds: 3, audio: false });
    const upload = await uploadFile(web.url, clip);
    assert.equal(upload.status, 202, JSON.stringify(upload.json));
    const old = await waitForStatus(web.url, upload.json.id, 'ready', READY_TIMEOUT_MS);
    // Lost files (a video from before storyboards has no storyboard_url at all).
    for (const name of ['storyboard.vtt', 'storyboard.jpg']) {
      fs.rmSync(path.join(web.dataDir, 'content', old.id, name));
    }
    assert.equal((await fetch(web.url + old.storyboard_url)).status, 404);

    const { page, problems } = await openPlayer(t, old.id);
    await hover(page, 0.5);
    // Asked for once, found missing: no cues.
    await page.waitForFunction(() => window.streamgridPlayer.storyboard?.cues === 0 &&
      !document.getElementById('seek-preview').hidden, null, { timeout: PAGE_TIMEOUT_MS, polling: 50 });
    await page.mouse.move(5, 5);
    await hover(page, 0.5);
    // The track's 404 is all that went wrong; the preview has the time, no picture.
    assert.equal(await page.locator('#seek-preview-image').isHidden(), true);
    assert.match(await page.locator('#seek-preview-time').textContent(), /^0:0\d$/);
    const unexpected = problems.filter((p) => !/storyboard\.vtt|404 \(Not Found\)/.test(p));
    assert.deepEqual(unexpected, []);
    assert.deepEqual((await playerState(page)).errors, []);
  });
});
