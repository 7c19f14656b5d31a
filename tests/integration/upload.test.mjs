// Upload → transcode → DASH and HLS playback, end to end against a real
// streamgrid-web with real ffmpeg, checked the way a player would use it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, makeTestVideo, uploadFile, waitForStatus, tempDir, dashFiles, hlsUris, run, probe,
  getVideo, getVideoWhenChanged, waitFor,
} from '../lib/streamgrid.mjs';

let web;
let scratch;
const videos = {}; // name → { id, file, seconds, audio, heights }

before(async () => {
  scratch = await tempDir();
  web = await startWeb();
});

after(async () => {
  await web?.stop();
});

/** Decodes a stream as a client would and returns the decoded duration in seconds. */
async function decodedSeconds(url) {
  const out = await run('ffmpeg', ['-v', 'error', '-nostats', '-i', url, '-map', '0:v:0',
    '-map', '0:a?', '-f', 'null', '-progress', 'pipe:1', '-'], { timeoutMs: 120000 });
  const times = [...out.matchAll(/out_time_us=(\d+)/g)].map((m) => Number(m[1]));
  return Math.max(...times) / 1e6;
}

async function fetchOk(url, expectType) {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  assert.equal(res.headers.get('access-control-allow-origin'), '*', `CORS on ${url}`);
  if (expectType) assert.equal(res.headers.get('content-type'), expectType, url);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(Number(res.headers.get('content-length')), body.length, url);
  assert.equal(res.headers.get('content-encoding'), null, `no compression of ${url}`);
  return { res, body };
}

const SOURCES = [
  { name: 'with-audio.mp4', width: 640, height: 360, seconds: 6, audio: true, heights: [360, 240] },
  { name: 'silent.mp4', width: 640, height: 360, seconds: 4, audio: false, heights: [360, 240] },
  { name: 'odd size.mp4', width: 854, height: 481, seconds: 4, audio: true, heights: [480, 360, 240] },
];

test('uploads are accepted at once and become ready', async () => {
  for (const source of SOURCES) {
    const file = await makeTestVideo(path.join(scratch, source.name), source);
    const res = await uploadFile(web.url, file);
    assert.equal(res.status, 202, res.text);
    assert.match(res.json.id, /^[0-9a-z]{26}$/);
    assert.equal(res.json.status, 'processing');
    videos[source.name] = { ...source, id: res.json.id, file };
  }
  for (const v of Object.values(videos)) {
    const video = await waitForStatus(web.url, v.id, 'ready');
    assert.equal(video.title, v.name);
    assert.equal(video.progress, 100);
    assert.ok(Math.abs(video.duration - v.seconds) < 0.5, `duration ${video.duration}`);
    assert.deepEqual(video.renditions.map((r) => r.height), v.heights);
    for (const r of video.renditions) {
      assert.equal(r.width % 2, 0);
      assert.ok(r.bitrate > 0);
    }
    assert.equal(video.error, null);
  }
});

test('every file the DASH manifest references is served', async () => {
  for (const v of Object.values(videos)) {
    const base = `${web.url}/content/${v.id}`;
    const { body } = await fetchOk(`${base}/manifest.mpd`, 'application/dash+xml');
    const mpd = body.toString();
    assert.match(mpd, /type="static"/);
    assert.match(mpd, /codecs="avc1\.[0-9a-fA-F]{6}"/, 'RFC 6381 codec string');
    assert.equal(/codecs="mp4a/.test(mpd), v.audio, 'audio adaptation set iff the source had audio');
    const files = dashFiles(mpd);
    assert.ok(files.length >= 2 * v.heights.length, `files: ${files}`);
    for (const f of files) {
      const { res } = await fetchOk(`${base}/${f}`, 'video/iso.segment');
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    }
  }
});

test('every file the HLS playlists reference is served', async () => {
  for (const v of Object.values(videos)) {
    const base = `${web.url}/content/${v.id}`;
    const master = (await fetchOk(`${base}/master.m3u8`, 'application/vnd.apple.mpegurl')).body.toString();
    assert.match(master, /^#EXTM3U/);
    const variants = hlsUris(master).filter((u) => u.endsWith('.m3u8'));
    assert.ok(variants.length >= v.heights.length, `variants ${variants}`);
    for (const variant of variants) {
      const playlist = (await fetchOk(`${base}/${variant}`, 'application/vnd.apple.mpegurl')).body.toString();
      assert.match(playlist, /#EXT-X-PLAYLIST-TYPE:VOD/);
      assert.match(playlist, /#EXT-X-ENDLIST/);
      for (const uri of hlsUris(playlist)) await fetchOk(`${base}/${uri}`);
    }
  }
});

test('DASH and HLS decode to the full duration as a client reads them', async () => {
  for (const v of Object.values(videos)) {
    for (const manifest of ['manifest.mpd', 'master.m3u8']) {
      const url = `${web.url}/content/${v.id}/${manifest}`;
      const seconds = await decodedSeconds(url);
      assert.ok(Math.abs(seconds - v.seconds) < 0.5, `${v.name} ${manifest}: decoded ${seconds} s`);
      const info = await probe(url);
      assert.equal(info.streams.some((s) => s.codec_type === 'audio'), v.audio, `${v.name} ${manifest} audio`);
    }
  }
});

test('content supports HEAD, byte ranges, ETags and a thumbnail', async () => {
  const v = videos['with-audio.mp4'];
  const base = `${web.url}/content/${v.id}`;
  const mpd = (await fetchOk(`${base}/manifest.mpd`)).body.toString();
  const segment = `${base}/${dashFiles(mpd).find((f) => f.startsWith('chunk-'))}`;
  const full = (await fetchOk(segment)).body;

  const head = await fetch(segment, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers.get('content-length')), full.length);
  assert.equal(head.headers.get('accept-ranges'), 'bytes');
  assert.equal((await head.arrayBuffer()).byteLength, 0);

  let res = await fetch(segment, { headers: { Range: 'bytes=10-99' } });
  assert.equal(res.status, 206);
  assert.equal(res.headers.get('content-range'), `bytes 10-99/${full.length}`);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), full.subarray(10, 100));

  res = await fetch(segment, { headers: { Range: 'bytes=-16' } });
  assert.equal(res.status, 206);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), full.subarray(full.length - 16));

  res = await fetch(segment, { headers: { Range: `bytes=${full.length + 5}-` } });
  assert.equal(res.status, 416);
  assert.equal(res.headers.get('content-range'), `bytes */${full.length}`);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  await res.arrayBuffer();

  const etag = head.headers.get('etag');
  assert.ok(etag);
  res = await fetch(segment, { headers: { 'If-None-Match': etag } });
  assert.equal(res.status, 304);
  await res.arrayBuffer();

  const { body: jpeg } = await fetchOk(`${base}/thumbnail.jpg`, 'image/jpeg');
  assert.equal(jpeg[0], 0xff);
  assert.equal(jpeg[1], 0xd8);
  const thumb = await probe(`${base}/thumbnail.jpg`);
  assert.ok(thumb.streams[0].height > 0);
});

test('browser uploads are redirected to the player; titles repeat, ids do not', async () => {
  const file = videos['silent.mp4'].file;
  const first = await uploadFile(web.url, file, { accept: 'text/html' });
  assert.equal(first.status, 303);
  const location = first.headers.get('location');
  assert.match(location, /^\/videos\/[0-9a-z]{26}$/);
  const second = await uploadFile(web.url, file);
  const firstId = location.split('/').pop();
  assert.notEqual(firstId, second.json.id);
  for (const id of [firstId, second.json.id]) {
    assert.equal((await getVideo(web.url, id)).title, 'silent.mp4');
  }
  // Both must finish before the deletion test, which counts what is stored.
  await waitForStatus(web.url, firstId, 'ready');
  await waitForStatus(web.url, second.json.id, 'ready');

  const page = await fetch(`${web.url}${location}`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /silent\.mp4/);
});

test('the list is newest first and pages', async () => {
  const all = (await (await fetch(`${web.url}/api/videos?limit=1000`)).json()).videos;
  assert.equal(all.length, 5);
  const ids = all.map((v) => v.id);
  assert.deepEqual([...ids].sort().reverse(), ids, 'newest first');
  const seen = [];
  let token = '';
  for (;;) {
    const page = await (await fetch(`${web.url}/api/videos?limit=2&page_token=${token}`)).json();
    assert.ok(page.videos.length <= 2);
    seen.push(...page.videos.map((v) => v.id));
    if (!page.next_page_token) break;
    token = page.next_page_token;
  }
  assert.deepEqual(seen, ids);

  const home = await (await fetch(`${web.url}/`)).text();
  assert.match(home, /name="file"/);
  for (const v of Object.values(videos)) {
    assert.ok(home.includes(`/content/${v.id}/thumbnail.jpg`), `thumbnail of ${v.name} on the home page`);
    assert.ok(home.includes(v.name), `title ${v.name} on the home page`);
  }
});

test("a video's record has an ETag, answers 304 to it, and with Prefer: wait waits for a change", async () => {
  const v = videos['with-audio.mp4'];
  const url = `${web.url}/api/videos/${v.id}`;
  const first = await getVideoWhenChanged(web.url, v.id, null);
  assert.equal(first.status, 200);
  assert.match(first.etag, /^"[0-9a-f]{16}"$/);
  assert.equal(first.video.status, 'ready');

  const same = await fetch(url, { headers: { 'If-None-Match': first.etag } });
  assert.equal(same.status, 304);
  assert.equal(same.headers.get('etag'), first.etag);
  assert.equal(await same.text(), '');
  assert.equal((await fetch(url)).headers.get('etag'), first.etag, 'the same record, the same tag');

  // Another tag: the record at once, however long the client would wait.
  const stale = await getVideoWhenChanged(web.url, v.id, '"0000000000000000"', 30);
  assert.equal(stale.status, 200);
  assert.deepEqual(stale.video, first.video);
  // Nothing changes: 304 once the wait is over.
  const unchanged = await getVideoWhenChanged(web.url, v.id, first.etag, 1);
  assert.equal(unchanged.status, 304);
  assert.equal(unchanged.etag, first.etag);
  // A wait that cannot be read is no wait.
  const odd = await fetch(url, { headers: { 'If-None-Match': first.etag, Prefer: 'wait=soon' } });
  assert.equal(odd.status, 304);
});

test('DELETE removes the record and every file', async () => {
  const v = videos['odd size.mp4'];
  // A client waiting on the record hears of the delete at once (404), not
  // when its 30 s are up.
  const current = await getVideoWhenChanged(web.url, v.id, null);
  const waiting = getVideoWhenChanged(web.url, v.id, current.etag, 30);
  const res = await fetch(`${web.url}/api/videos/${v.id}`, { method: 'DELETE' });
  assert.equal(res.status, 204);
  const woken = await waiting;
  assert.equal(woken.status, 404);
  assert.ok(woken.ms < 25000, `the wait ended after ${woken.ms} ms`);
  assert.equal(await getVideo(web.url, v.id), null);
  assert.equal((await fetch(`${web.url}/content/${v.id}/manifest.mpd`)).status, 404);
  const left = await readdir(path.join(web.dataDir, 'content')).catch(() => []);
  assert.ok(!left.includes(v.id), 'content directory removed');
  assert.equal((await fetch(`${web.url}/api/videos/${v.id}`, { method: 'DELETE' })).status, 404);
  // The others are untouched.
  await fetchOk(`${web.url}/content/${videos['silent.mp4'].id}/manifest.mpd`);
});

test('a transcode interrupted by a crash resumes after restart', async () => {
  const dataDir = await tempDir('streamgrid-restart-');
  let server = await startWeb({ dataDir });
  const file = await makeTestVideo(path.join(scratch, 'long.mp4'), { seconds: 12, width: 640, height: 360 });
  const res = await uploadFile(server.url, file);
  assert.equal(res.status, 202);
  // Crash while the job runs (or is queued): nothing may stay stuck.
  await waitFor(async () => (await getVideo(server.url, res.json.id))?.status === 'processing',
    { what: 'processing' });
  await server.kill();
  server = await startWeb({ dataDir });
  try {
    const video = await waitForStatus(server.url, res.json.id, 'ready');
    assert.equal(video.progress, 100);
    const seconds = await decodedSeconds(`${server.url}/content/${video.id}/manifest.mpd`);
    assert.ok(Math.abs(seconds - 12) < 0.5, `decoded ${seconds} s`);
    // The worker removes the job's directory right after it records the
    // video as ready.
    const leftInWork = async () => (await readdir(path.join(dataDir, 'work'), { recursive: true })
      .catch(() => [])).filter((f) => !['uploads'].includes(f));
    await waitFor(async () => (await leftInWork()).length === 0,
      { what: 'the work dir to be cleaned' }).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await leftInWork())}`);
    });
  } finally {
    await server.stop();
  }
});
