// Browser tests of the home page's upload panel: resumable uploads (tus 1.0 at
// /api/uploads through tus-js-client) of several files, chosen with the picker
// or dropped, resumed after a reload, and the server's refusals in words.
// Run with `node --test tests/browser/upload.test.mjs` (STREAMGRID_BUILD_DIR set,
// `npm ci` done in web/). Screenshots land in <build>/test-artifacts/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  launchChromium, play, playerState, screenshotPath, trackProblems, waitForTime,
} from '../lib/browser.mjs';
import { makeTestVideo, startWeb, waitFor } from '../lib/streamgrid.mjs';

const READY_TIMEOUT_MS = 180_000; // upload + transcode on a slow, busy CI machine
const UPLOAD_TIMEOUT_MS = 120_000;

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

describe('upload panel', { timeout: 900_000 }, () => {
  let web;
  let tmp;
  let context;
  const clips = {}; // name -> path of a generated video

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamgrid-upload-'));
    web = await startWeb();
    const small = { width: 320, height: 180, seconds: 3, audio: true };
    for (const name of ['first.mp4', 'second.mp4', 'dropped.mp4']) {
      clips[name] = await makeTestVideo(path.join(tmp, name), small);
    }
    // About 10 MB: enough chunks of the test's 256 KiB to stop in the middle.
    clips['large.mp4'] = await makeTestVideo(path.join(tmp, 'large.mp4'), {
      width: 640, height: 360, seconds: 16, audio: true,
      extra: ['-b:v', '12M', '-maxrate', '12M', '-bufsize', '4M'],
    });
    context = await launchChromium(path.join(tmp, 'chromium-profile'));
  }, { timeout: 300_000 });

  after(async () => {
    await context?.close().catch(() => {});
    await web?.stop().catch(() => {});
    if (web?.dataDir) fs.rmSync(web.dataDir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  // The home page in a fresh tab, recording every text the upload rows showed
  // (window.__sgRowTexts: [{name, state, text}]) and, when given, the upload
  // options the page should use (window.streamgridUploadOptions).
  async function openHome(t, uploadOptions) {
    const page = await context.newPage();
    const problems = trackProblems(page);
    t.after(() => page.close().catch(() => {}));
    page.on('dialog', (d) => d.accept()); // a "leave the page?" question on reload
    await page.addInitScript((options) => {
      if (options) window.streamgridUploadOptions = options;
      window.__sgRowTexts = [];
      document.addEventListener('DOMContentLoaded', () => {
        const list = document.getElementById('upload-list');
        if (!list) return;
        new MutationObserver(() => {
          for (const row of list.querySelectorAll('.upload-item')) {
            const entry = {
              name: row.querySelector('.upload-name')?.textContent,
              state: row.getAttribute('data-state'),
              text: row.querySelector('.upload-status')?.textContent,
            };
            const last = window.__sgRowTexts.findLast((e) => e.name === entry.name);
            if (!last || last.state !== entry.state || last.text !== entry.text) window.__sgRowTexts.push(entry);
          }
        }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
      });
    }, uploadOptions || null);
    const response = await page.goto(web.url + '/');
    assert.match(response.headers()['content-security-policy'] || '', /script-src 'self'/);
    return { page, problems };
  }

  const rowFor = (page, name) =>
    page.locator('.upload-item').filter({ has: page.locator('.upload-name', { hasText: name }) });

  // Waits for a row to reach `state` ('ready', 'error', ...); says what it shows if not.
  async function waitForRow(page, name, state, timeout) {
    try {
      await page.waitForFunction(
        ([n, s]) => Array.from(document.querySelectorAll('.upload-item')).some((row) =>
          row.querySelector('.upload-name')?.textContent === n && row.getAttribute('data-state') === s),
        [name, state],
        { timeout, polling: 100 },
      );
    } catch (err) {
      const rows = await page.evaluate(() => window.__sgRowTexts);
      throw new Error(`row ${name} never became ${state}: ${JSON.stringify(rows.slice(-5))}`, { cause: err });
    }
  }

  const rowTexts = async (page, name) =>
    (await page.evaluate(() => window.__sgRowTexts)).filter((e) => e.name === name);

  // The id of the video a ready row links to.
  async function watchedId(page, name) {
    const href = await rowFor(page, name).locator('a.upload-watch').getAttribute('href');
    assert.match(href, /^\/videos\/[^/?#]+$/);
    return href.split('/').pop();
  }

  test('two files chosen at once: both upload, process, become ready and play', async (t) => {
    const { page, problems } = await openHome(t);
    assert.ok(await page.locator('#drop-hint').isVisible(), 'the drop zone says what it takes');
    assert.equal(await page.locator('#upload-file').evaluate((i) => i.multiple), true, 'picker takes several');
    const statusReads = new Map(); // video id -> the headers of each GET /api/videos/<id>
    page.on('request', (request) => {
      const m = /\/api\/videos\/([^/?#]+)$/.exec(new URL(request.url()).pathname);
      if (!m || request.method() !== 'GET') return;
      if (!statusReads.has(m[1])) statusReads.set(m[1], []);
      statusReads.get(m[1]).push(request.headers());
    });

    await page.setInputFiles('#upload-file', [clips['first.mp4'], clips['second.mp4']]);
    await rowFor(page, 'first.mp4').waitFor({ timeout: 10_000 });
    await rowFor(page, 'second.mp4').waitFor({ timeout: 10_000 });
    await page.screenshot({ path: screenshotPath('upload-in-progress'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('upload-in-progress')}`);

    for (const name of ['first.mp4', 'second.mp4']) await waitForRow(page, name, 'ready', READY_TIMEOUT_MS);
    await page.screenshot({ path: screenshotPath('upload-ready'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('upload-ready')}`);
    // The rows fit a phone's width.
    await page.setViewportSize({ width: 390, height: 844 });
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
      row: document.querySelector('.upload-item').getBoundingClientRect().right,
    }));
    assert.ok(widths.page <= widths.viewport && widths.row <= widths.viewport, JSON.stringify(widths));
    await page.screenshot({ path: screenshotPath('upload-ready-phone'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('upload-ready-phone')}`);
    await page.setViewportSize({ width: 1280, height: 800 });

    const size = (name) => fs.statSync(clips[name]).size;
    let percentSeen = false;
    for (const name of ['first.mp4', 'second.mp4']) {
      const texts = await rowTexts(page, name);
      assert.ok(texts.some((e) => e.state === 'uploading' && /\(100%\)/.test(e.text)),
        `${name} reached 100 %: ${JSON.stringify(texts)}`);
      assert.ok(texts.some((e) => e.state === 'uploading' && e.text.includes(' of ') &&
        e.text.includes(`${(size(name) / 1000).toFixed(0)} KB`)), `bytes of the total shown: ${JSON.stringify(texts)}`);
      assert.ok(texts.some((e) => e.state === 'processing'), `${name} showed processing: ${JSON.stringify(texts)}`);
      percentSeen ||= texts.some((e) => /^Processing \d+%$/.test(e.text));
      assert.equal(await rowFor(page, name).locator('.upload-cancel').isVisible(), false, 'no Cancel once done');
    }
    if (!percentSeen) t.diagnostic('both videos were ready before the page first asked; no percent observed');

    // Each video's card is in the grid, and each Watch link opens a page that plays.
    const ids = [await watchedId(page, 'first.mp4'), await watchedId(page, 'second.mp4')];
    assert.notEqual(ids[0], ids[1]);
    // After its first read, the row follows its video by long polls (two at
    // most at once: these two).
    for (const id of ids) {
      const reads = statusReads.get(id) ?? [];
      assert.ok(reads.length >= 1, `the row read video ${id}`);
      t.diagnostic(`video ${id}: ${reads.length} reads`);
      for (const headers of reads.slice(1)) {
        assert.match(headers['if-none-match'] ?? '', /^"[0-9a-f]{16}"$/, JSON.stringify(headers));
        assert.equal(headers.prefer, 'wait=25');
      }
    }
    for (const id of ids) {
      await page.locator(`.video-card[data-id="${id}"][data-status="ready"]`).waitFor({ timeout: 30_000 });
    }
    const other = await context.newPage();
    t.after(() => other.close().catch(() => {}));
    await other.goto(web.url + `/videos/${ids[1]}`);
    await play(other);
    await waitForTime(other, 2);
    assert.deepEqual((await playerState(other)).errors, []);

    await Promise.all([
      page.waitForURL(new RegExp(`/videos/${ids[0]}$`), { timeout: 30_000 }),
      rowFor(page, 'first.mp4').locator('a.upload-watch').click(),
    ]);
    await play(page);
    await waitForTime(page, 2);
    assert.deepEqual((await playerState(page)).errors, []);
    assert.deepEqual(problems, []);
  });

  test('a file dropped on the panel uploads and becomes ready', async (t) => {
    const { page, problems } = await openHome(t);
    const bytes = fs.readFileSync(clips['dropped.mp4']);
    const dataTransfer = await page.evaluateHandle(({ b64, name }) => {
      const raw = atob(b64);
      const data = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i += 1) data[i] = raw.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([data], name, { type: 'video/mp4' }));
      return dt;
    }, { b64: bytes.toString('base64'), name: 'dropped.mp4' });

    // Hovering shows the drop state; the drop starts the upload.
    await page.dispatchEvent('#upload-form', 'dragenter', { dataTransfer });
    assert.equal(await page.locator('#upload-form').evaluate((f) => f.classList.contains('dragging')), true);
    await page.screenshot({ path: screenshotPath('upload-drag-hover') });
    t.diagnostic(`screenshot: ${screenshotPath('upload-drag-hover')}`);
    await page.dispatchEvent('#upload-form', 'drop', { dataTransfer });
    assert.equal(await page.locator('#upload-form').evaluate((f) => f.classList.contains('dragging')), false);

    await waitForRow(page, 'dropped.mp4', 'ready', READY_TIMEOUT_MS);
    const id = await watchedId(page, 'dropped.mp4');
    const res = await fetch(`${web.url}/content/${id}/original`);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(bytes), 'the dropped bytes are stored');
    assert.deepEqual(problems, []);
  });

  test('a reload in the middle: choosing the file again resumes where the server stopped', async (t) => {
    const file = clips['large.mp4'];
    const source = fs.readFileSync(file);
    const size = source.length;
    t.diagnostic(`large test video: ${size} bytes`);
    assert.ok(size > 4_000_000, `big enough to stop in the middle: ${size}`);
    const chunk = 256 * 1024;
    const { page, problems } = await openHome(t, { chunkSize: chunk });

    // Count the PATCH bodies; hold the first PATCH past 40 % so that the reload
    // surely comes in the middle (the held request never reaches the server).
    let phase = 'before';
    const sent = { before: 0, after: 0 };
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await page.route('**/api/uploads/**', async (route) => {
      const req = route.request();
      if (req.method() !== 'PATCH') return route.continue();
      const offset = Number(req.headers()['upload-offset']);
      if (phase === 'before' && offset >= 0.4 * size) {
        release(offset);
        return; // held until the reload drops it
      }
      sent[phase] += req.postDataBuffer()?.length ?? 0;
      return route.continue();
    });
    const heads = [];
    page.on('response', (res) => {
      if (res.request().method() === 'HEAD' && /\/api\/uploads\//.test(res.url())) {
        heads.push({ status: res.status(), offset: Number(res.headers()['upload-offset']) });
      }
    });

    await page.setInputFiles('#upload-file', file);
    const heldAt = await held;
    await page.waitForFunction(() => Number(document.querySelector('.upload-item .upload-bar')?.value) >= 40,
      null, { timeout: UPLOAD_TIMEOUT_MS });
    await page.screenshot({ path: screenshotPath('upload-resume-before-reload'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('upload-resume-before-reload')}`);
    assert.equal(sent.before, heldAt, 'every chunk before the held one was sent whole');
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length), 1,
      'the upload is remembered for resuming');

    phase = 'after';
    await page.reload();
    assert.equal(await page.locator('.upload-item').count(), 0, 'a fresh page');
    await page.setInputFiles('#upload-file', file);
    await waitForRow(page, 'large.mp4', 'ready', READY_TIMEOUT_MS);

    assert.ok(heads.length >= 1 && heads[0].status === 200, `the page asked where the server is: ${JSON.stringify(heads)}`);
    assert.equal(heads[0].offset, heldAt, 'the server kept what was sent before the reload');
    assert.ok(heads[0].offset > 0);
    assert.ok(sent.after < size, `only the rest was sent after the reload: ${sent.after} of ${size}`);
    assert.equal(sent.after, size - heads[0].offset, 'exactly the rest');
    const texts = await rowTexts(page, 'large.mp4');
    assert.ok(texts.some((e) => e.text === 'Resuming…'), `the row said it resumes: ${JSON.stringify(texts.slice(0, 4))}`);
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length), 0,
      'forgotten once finished');

    const id = await watchedId(page, 'large.mp4');
    const res = await fetch(`${web.url}/content/${id}/original`);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(source), 'the stored original is the file');
    await page.screenshot({ path: screenshotPath('upload-resume-ready'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('upload-resume-ready')}`);
    assert.deepEqual(problems, []);
  });

  test('Cancel stops the upload and deletes it on the server', async (t) => {
    const { page } = await openHome(t, { chunkSize: 256 * 1024 });
    // Hold the second PATCH, so that the upload is surely in the middle.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await page.route('**/api/uploads/**', async (route) => {
      const req = route.request();
      if (req.method() === 'PATCH' && Number(req.headers()['upload-offset']) > 0) {
        release(req.url());
        return; // never answered; the abort drops it
      }
      return route.continue();
    });
    const deleted = page.waitForResponse((res) => res.request().method() === 'DELETE', { timeout: 30_000 });
    await page.setInputFiles('#upload-file', clips['large.mp4']);
    const uploadUrl = await held;
    await rowFor(page, 'large.mp4').locator('.upload-cancel').click();
    assert.equal((await deleted).status(), 204, 'the partial upload is deleted');
    await waitForRow(page, 'large.mp4', 'cancelled', 10_000);
    assert.equal(await rowFor(page, 'large.mp4').locator('.upload-cancel').isVisible(), false);
    const head = await fetch(uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
    assert.equal(head.status, 404, 'the server no longer has it');
    assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length), 0,
      'and the page forgot it');
  });

  test('a file that is not a video: the row shows the server\'s refusal in words', async (t) => {
    const text = path.join(tmp, 'notes.txt');
    fs.writeFileSync(text, 'These are notes, not a video.\n'.repeat(200));
    const { page } = await openHome(t);
    const refusals = [];
    page.on('response', async (res) => {
      if (res.request().method() === 'PATCH' && res.status() >= 400) {
        refusals.push({ status: res.status(), body: await res.text().catch(() => '') });
      }
    });
    await page.setInputFiles('#upload-file', text);
    await waitForRow(page, 'notes.txt', 'error', UPLOAD_TIMEOUT_MS);
    const shown = (await rowFor(page, 'notes.txt').locator('.upload-status').textContent()).trim();
    await waitFor(() => refusals.length > 0, { timeoutMs: 10_000, what: 'the refusal to be read' });
    assert.equal(refusals.length, 1, JSON.stringify(refusals));
    assert.equal(refusals[0].status, 415);
    const message = JSON.parse(refusals[0].body).error;
    assert.ok(message, 'the server said why');
    assert.equal(shown, message, 'the row shows the server\'s words');
    assert.equal(await rowFor(page, 'notes.txt').locator('.upload-watch').isVisible(), false);
    await page.screenshot({ path: screenshotPath('upload-refused'), fullPage: true });
    t.diagnostic(`screenshot: ${screenshotPath('upload-refused')}`);
  });
});
