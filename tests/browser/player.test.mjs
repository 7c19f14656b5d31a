// Browser tests: the real streamgrid-web, Debian's Chromium (headless) driven by
// playwright-core. Run with `node --test tests/browser/` (ctest does, with
// STREAMGRID_BUILD_DIR set); needs `npm ci` in web/ (./dev does it).
//
// Screenshots of the pages land in <build>/test-artifacts/ (paths are printed as
// diagnostics), for a person to look at.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  clockTime, launchChromium, play, playerState, screenshotPath, trackProblems, waitForTime,
} from '../lib/browser.mjs';
import { makeTestVideo, startWeb, uploadFile, waitForStatus } from '../lib/streamgrid.mjs';

const READY_TIMEOUT_MS = 180_000; // upload + transcode on a slow, busy CI machine
const PLAY_TIMEOUT_MS = 30_000;

describe('web player', { timeout: 600_000 }, () => {
  let web;
  let tmp;
  let context;
  let videoPath;
  let video; // the API's JSON for the uploaded test video
  const title = 'Browser test <clip> & co.mp4';

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamgrid-browser-'));
    web = await startWeb();
    videoPath = await makeTestVideo(path.join(tmp, 'clip.mp4'), {
      width: 640,
      height: 360,
      seconds: 6,
      audio: true,
    });
    const upload = await uploadFile(web.url, videoPath, { filename: title });
    assert.equal(upload.status, 202, `upload answered ${upload.status}: ${JSON.stringify(upload.json)}`);
    assert.ok(upload.json && upload.json.id, 'upload JSON has an id');
    video = await waitForStatus(web.url, upload.json.id, 'ready', READY_TIMEOUT_MS);

    context = await launchChromium(path.join(tmp, 'chromium-profile'));
    // Every Content-Security-Policy violation in any document a tab showed.
    await context.exposeBinding('__sgCspViolation', ({ page }, text) => {
      if (!violations.has(page)) violations.set(page, []);
      violations.get(page).push(text);
    });
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__sgCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'}`);
      });
    });
  }, { timeout: READY_TIMEOUT_MS + 60_000 });

  // The CSP violations a tab reported so far, over all its navigations.
  const violations = new WeakMap();
  const cspViolations = async (page) => violations.get(page) || [];

  // The page's own CSP must be the strict one: only our scripts, no inline code.
  function assertStrictCsp(response) {
    const csp = response.headers()['content-security-policy'] || '';
    assert.match(csp, /script-src 'self'/, `CSP: ${csp}`);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  }

  after(async () => {
    await context?.close().catch(() => {});
    await web?.stop().catch(() => {});
    if (web?.dataDir) fs.rmSync(web.dataDir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  // A fresh tab that records what went wrong in it: uncaught exceptions, console
  // errors and failed requests for our own assets.
  async function openPage(t, pathAndQuery) {
    const page = await context.newPage();
    const problems = trackProblems(page);
    t.after(() => page.close().catch(() => {}));
    const response = await page.goto(web.url + pathAndQuery);
    assertStrictCsp(response);
    return { page, problems };
  }

  async function qualityOptions(page) {
    return page.$$eval('#quality option', (options) =>
      options.map((o) => ({ value: o.value, label: o.textContent.trim() })));
  }

  test('plays with dash.js, no errors, quality menu lists Auto and every rung', async (t) => {
    const { page, problems } = await openPage(t, `/videos/${video.id}`);
    await play(page);
    await waitForTime(page, 2);
    const s = await playerState(page);
    assert.equal(s.engine, 'dash');
    assert.deepEqual(s.errors, []);
    assert.ok(s.videoHeight > 0, 'video has a picture');

    await page.waitForFunction(() => document.querySelectorAll('#quality option').length > 1, null, {
      timeout: PLAY_TIMEOUT_MS,
    });
    const options = await qualityOptions(page);
    assert.equal(options[0].label, 'Auto');
    const heights = options.slice(1).map((o) => Number.parseInt(o.label, 10)).sort((a, b) => b - a);
    const expected = (video.renditions || []).map((r) => r.height).sort((a, b) => b - a);
    assert.ok(heights.length > 0, 'at least one rendition in the menu');
    if (expected.length > 0) assert.deepEqual(heights, expected, 'menu rungs match the API renditions');
    for (const o of options.slice(1)) assert.match(o.label, /^\d+p/);

    assert.equal(await page.locator('#title').textContent(), title, 'title shown (escaped) on the page');
    assert.ok(await page.locator('a[href="/"]').count() > 0, 'link back to the list');
    assert.ok(await page.locator('#delete').isVisible(), 'delete button visible');
    await page.screenshot({ path: screenshotPath('player'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('player')}`);
    assert.deepEqual(problems, []);
    assert.deepEqual(await cspViolations(page), []);
  });

  test('plays with hls.js (?engine=hls)', async (t) => {
    const { page, problems } = await openPage(t, `/videos/${video.id}?engine=hls`);
    await play(page);
    await waitForTime(page, 2);
    const s = await playerState(page);
    assert.equal(s.engine, 'hls');
    assert.deepEqual(s.errors, []);
    assert.ok(s.videoHeight > 0, 'video has a picture');
    const options = await qualityOptions(page);
    assert.equal(options[0].label, 'Auto');
    assert.ok(options.length > 1, 'hls.js levels listed');
    assert.deepEqual(problems, []);
    assert.deepEqual(await cspViolations(page), []);
  });

  for (const engine of ['dash', 'hls']) {
    test(`choosing a quality switches the rendition (${engine})`, async (t) => {
      const { page, problems } = await openPage(t, `/videos/${video.id}?engine=${engine}`);
      await play(page);
      await waitForTime(page, 0.3);
      await page.waitForFunction(() => document.querySelectorAll('#quality option').length > 1, null, {
        timeout: PLAY_TIMEOUT_MS,
      });
      const rungs = (await qualityOptions(page)).slice(1);
      const playing = (await playerState(page)).videoHeight;
      // Pick a rung other than the one playing (the lowest, unless that is playing).
      const lowest = rungs[rungs.length - 1];
      const target = Number.parseInt(lowest.label, 10) !== playing || rungs.length === 1 ? lowest : rungs[0];
      const targetHeight = Number.parseInt(target.label, 10);
      await page.selectOption('#quality', target.value);

      // Wait for the picture to change; restart from the top should the short clip end first.
      const deadline = Date.now() + PLAY_TIMEOUT_MS;
      let s = await playerState(page);
      while (s.videoHeight !== targetHeight && Date.now() < deadline) {
        if (s.ended) {
          await page.evaluate(() => {
            const v = document.getElementById('video');
            v.currentTime = 0;
            return v.play();
          });
        }
        await page.waitForTimeout(100);
        s = await playerState(page);
      }
      assert.equal(s.videoHeight, targetHeight, `rendition after choosing ${target.label}: ${JSON.stringify(s)}`);
      const engineHeight = await page.evaluate(() => {
        const p = window.streamgridPlayer;
        if (p.dash) return p.dash.getCurrentRepresentationForType('video')?.height;
        if (p.hls) return p.hls.levels[p.hls.currentLevel]?.height;
        return null;
      });
      assert.equal(engineHeight, targetHeight, 'the engine reports the chosen rendition');
      assert.match(await page.locator('#current-quality').textContent(), new RegExp(`${targetHeight}p`));
      assert.deepEqual(s.errors, []);
      assert.deepEqual(problems, []);
    assert.deepEqual(await cspViolations(page), []);
    });
  }

  test('keyboard shortcuts play, pause, seek, mute and go full screen', async (t) => {
    const { page, problems } = await openPage(t, `/videos/${video.id}`);
    await play(page);
    await waitForTime(page, 0.2);
    // Keys go to the page, not to a control.
    await page.evaluate(() => document.activeElement?.blur());
    const videoState = () => page.evaluate(() => {
      const v = document.getElementById('video');
      return { paused: v.paused, time: v.currentTime, muted: v.muted, volume: v.volume,
        fullscreen: document.fullscreenElement?.id || null };
    });
    const until = (what, test) => page.waitForFunction(test, null, { timeout: 10_000, polling: 50 })
      .catch(async (err) => {
        throw new Error(`${what}: ${JSON.stringify(await videoState())}`, { cause: err });
      });

    await page.keyboard.press('Space');
    await until('space pauses', () => document.getElementById('video').paused);
    await page.evaluate(() => { document.getElementById('video').currentTime = 0; });
    await until('rewound', () => document.getElementById('video').currentTime === 0);
    await page.keyboard.press('ArrowRight');
    await until('right arrow seeks 5 s ahead',
      () => Math.abs(document.getElementById('video').currentTime - 5) < 0.01);
    await page.keyboard.press('ArrowLeft');
    await until('left arrow seeks 5 s back', () => document.getElementById('video').currentTime === 0);
    await page.keyboard.press('5');
    await until('5 jumps to half way', () => {
      const v = document.getElementById('video');
      return Math.abs(v.currentTime - v.duration / 2) < 0.01;
    });
    assert.equal((await videoState()).muted, true, 'muted by play()');
    await page.keyboard.press('m');
    await until('m unmutes', () => !document.getElementById('video').muted);
    await page.keyboard.press('ArrowDown');
    await until('down arrow lowers the volume', () => document.getElementById('video').volume < 0.95);
    await page.keyboard.press('k');
    await until('k plays', () => !document.getElementById('video').paused);
    await page.keyboard.press('f');
    await until('f goes full screen', () => document.fullscreenElement?.id === 'player-frame');
    await page.keyboard.press('f');
    await until('f leaves full screen', () => document.fullscreenElement === null);

    // Typing into a control is left alone.
    await page.keyboard.press('Space'); // pause, so that a stray toggle would show
    await until('paused again', () => document.getElementById('video').paused);
    await page.focus('#quality');
    await page.keyboard.press('k');
    assert.equal((await videoState()).paused, true, 'k in the quality menu does not play');
    assert.deepEqual((await playerState(page)).errors, []);
    assert.deepEqual(problems, []);
  });

  test('the pages fit a phone\'s width', async (t) => {
    for (const [name, where] of [['home', '/'], ['player', `/videos/${video.id}`]]) {
      const { page, problems } = await openPage(t, where);
      await page.setViewportSize({ width: 390, height: 844 });
      if (name === 'player') await play(page);
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
        video: document.getElementById('video')?.getBoundingClientRect().width ?? null,
      }));
      assert.ok(widths.page <= widths.viewport, `${name}: no sideways scrolling: ${JSON.stringify(widths)}`);
      if (name === 'player') assert.ok(widths.video >= 380, `the video spans the width: ${widths.video}`);
      await page.screenshot({ path: screenshotPath(`${name}-phone`), fullPage: true });
      t.diagnostic(`screenshot: ${screenshotPath(`${name}-phone`)}`);
      assert.deepEqual(problems, []);
    }
  });

  test('home page lists the video with its thumbnail, and has the upload form', async (t) => {
    const { page, problems } = await openPage(t, '/');
    const card = page.locator(`.video-card[data-id="${video.id}"]`);
    await card.waitFor({ timeout: 10_000 });
    assert.equal(await card.getAttribute('data-status'), 'ready');
    assert.equal((await card.locator('a.title').textContent()).trim(), title);
    assert.equal(await card.locator('a.title').getAttribute('href'), `/videos/${video.id}`);
    assert.equal((await card.locator('.status').textContent()).trim(), 'ready');
    assert.ok(video.duration > 5, `the API's duration: ${video.duration}`);
    assert.equal((await card.locator('.duration').textContent()).trim(), clockTime(video.duration));
    const img = card.locator('a.thumb img');
    await img.scrollIntoViewIfNeeded();
    await page.waitForFunction(
      (id) => {
        const i = document.querySelector(`.video-card[data-id="${id}"] img`);
        return i && i.complete && i.naturalWidth > 0;
      },
      video.id,
      { timeout: 10_000 },
    );

    const form = page.locator('form[action="/upload"]');
    assert.equal(await form.count(), 1);
    assert.equal((await form.getAttribute('method')).toLowerCase(), 'post');
    assert.equal(await form.getAttribute('enctype'), 'multipart/form-data');
    const input = form.locator('input[type="file"][name="file"]');
    assert.equal(await input.count(), 1);
    assert.equal(await input.getAttribute('accept'), 'video/*');
    assert.equal(await form.locator('[type="submit"]').count(), 1);

    await page.screenshot({ path: screenshotPath('home'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('home')}`);
    assert.deepEqual(problems, []);
    assert.deepEqual(await cspViolations(page), []);

    // The policy is enforced (and the recorder sees it): injected inline code does not run.
    const ran = await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.__sgInjected = true;';
      document.head.append(script);
      return window.__sgInjected === true;
    });
    assert.equal(ran, false, 'inline script blocked');
    // The report comes back through an exposed binding: poll for it.
    for (const deadline = Date.now() + 10_000; (await cspViolations(page)).length === 0 &&
      Date.now() < deadline;) {
      await page.waitForTimeout(50);
    }
    const seen = await cspViolations(page);
    assert.ok(seen.some((v) => /script-src/.test(v)), `violation recorded: ${JSON.stringify(seen)}`);
  });

  test('uploading from the page shows progress, then the player', async (t) => {
    const clip = await makeTestVideo(path.join(tmp, 'second.mp4'), {
      width: 640,
      height: 360,
      seconds: 8,
      audio: true,
    });
    const page = await context.newPage();
    t.after(() => page.close().catch(() => {}));
    const pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // Record every state the player page's status overlay goes through.
    await page.addInitScript(() => {
      window.__sgStates = [];
      document.addEventListener('DOMContentLoaded', () => {
        const frame = document.getElementById('player-frame');
        const text = document.getElementById('status-text');
        if (!frame || !text) return;
        const record = () => window.__sgStates.push({
          state: frame.getAttribute('data-state'),
          text: text.textContent,
        });
        new MutationObserver(record).observe(frame, { attributes: true, subtree: true, childList: true, characterData: true });
      });
    });
    assertStrictCsp(await page.goto(web.url + '/'));
    // Choosing the file starts the (tus) upload; its row shows the bytes sent,
    // then the processing, then a Watch link.
    await page.setInputFiles('#upload-file', clip);
    const row = page.locator('.upload-item').filter({ hasText: 'second.mp4' });
    await page.waitForFunction(
      () => /Processing|Ready/.test(document.querySelector('.upload-item .upload-status')?.textContent || ''),
      null,
      { timeout: 60_000, polling: 50 },
    );
    const watch = row.locator('a.upload-watch');
    await watch.waitFor({ state: 'visible', timeout: READY_TIMEOUT_MS });
    await Promise.all([
      page.waitForURL(/\/videos\/[^/?#]+$/, { timeout: 60_000 }),
      watch.click(),
    ]);
    const id = new URL(page.url()).pathname.split('/').pop();
    assert.ok(id, 'navigated to the new video');

    await page.waitForFunction(
      () => document.getElementById('player-frame').getAttribute('data-state') === 'ready',
      null,
      { timeout: READY_TIMEOUT_MS, polling: 100 },
    );
    const states = await page.evaluate(() => window.__sgStates);
    const processing = states.filter((s) => s.state === 'processing');
    if (processing.length > 0) {
      assert.ok(processing.some((s) => /\d+%/.test(s.text)), `progress shown: ${JSON.stringify(processing)}`);
    } else {
      t.diagnostic('the video was ready before the page first asked; processing view not observed');
    }
    await play(page);
    await waitForTime(page, 1);
    const s = await playerState(page);
    assert.deepEqual(s.errors, []);
    assert.equal(await page.locator('#title').textContent(), 'second.mp4');
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(await cspViolations(page), [], 'no CSP violation while uploading and playing');
  });

  test('with --api-token-file the page asks for the token, keeps it, uploads and deletes', async (t) => {
    const token = `page-token-${Date.now()}`;
    const tokenFile = path.join(tmp, 'api-token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const secured = await startWeb({ args: ['--api-token-file', tokenFile] });
    t.after(() => secured.stop().catch(() => {}));
    const page = await context.newPage();
    t.after(() => page.close().catch(() => {}));
    const pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));

    assertStrictCsp(await page.goto(secured.url + '/'));
    await page.setInputFiles('#upload-file', videoPath); // starts the upload
    // Refused with 401: the page asks. A wrong token is refused and asked for again.
    const dialog = page.locator('#token-dialog');
    await dialog.waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await page.locator('#token-message').textContent(), /needs an API token/);
    await page.screenshot({ path: screenshotPath('token') });
    t.diagnostic(`screenshot: ${screenshotPath('token')}`);
    await page.fill('#token-input', 'not-the-token');
    await page.click('#token-save');
    await page.waitForFunction(
      () => /not accepted/.test(document.getElementById('token-message')?.textContent || '') &&
        document.getElementById('token-dialog')?.open,
      null,
      { timeout: 30_000 },
    );
    await page.fill('#token-input', token);
    await page.click('#token-save');
    const watch = page.locator('.upload-item a.upload-watch');
    await watch.waitFor({ state: 'visible', timeout: READY_TIMEOUT_MS });
    await Promise.all([
      page.waitForURL(/\/videos\/[^/?#]+$/, { timeout: 60_000 }),
      watch.click(),
    ]);
    const id = new URL(page.url()).pathname.split('/').pop();
    assert.equal((await fetch(`${secured.url}/api/videos/${id}`)).status, 200, 'uploaded');
    assert.equal(await page.evaluate(() => localStorage.getItem('streamgrid.apiToken')), token, 'token kept');

    // The kept token goes with the delete: no second question.
    page.on('dialog', (d) => d.accept()); // the "Delete …?" confirmation
    await page.locator('#delete').waitFor({ state: 'visible', timeout: 30_000 });
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/', { timeout: 30_000 }),
      page.click('#delete'),
    ]);
    assert.equal((await fetch(`${secured.url}/api/videos/${id}`)).status, 404, 'deleted');
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(await cspViolations(page), []);
  });
});
