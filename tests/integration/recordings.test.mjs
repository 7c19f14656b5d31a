// Recordings that state no length (issue 11): a WebM written as a live stream
// (as a browser's MediaRecorder writes it: no duration, no cues, a segment of
// unknown size) made by the real ffmpeg through a pipe, uploaded through
// POST /upload and through tus (/api/uploads), becomes a ready video with the
// right duration, in the API and in the manifests, and its segments are
// served. A live-written MPEG-TS is accepted too; a WebM with a header and no
// media is refused with 422 and a clear message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import path from 'node:path';
import {
  startWeb, uploadFile, waitForStatus, tempDir, probe, hlsUris, dashFiles, rm,
} from '../lib/streamgrid.mjs';

const SECONDS = 4;
const RATE = 25;
// The measured length may end a frame (or an audio packet) past the last one.
const TOLERANCE = 2 / RATE;

let scratch;
let web;

before(async () => {
  scratch = await tempDir();
  web = await startWeb({ dataDir: path.join(scratch, 'web') });
});

after(async () => {
  await web?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/**
 * Runs ffmpeg on lavfi sources writing `format` to its stdout, a pipe, which
 * this process copies into `file`: the muxer cannot seek back to write a
 * duration or an index.
 */
async function recordThroughPipe(file, { videoCodec, audioCodec, format, extra = [] }) {
  const args = ['-hide_banner', '-loglevel', 'error',
    '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${RATE}:duration=${SECONDS}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${SECONDS}`,
    '-c:v', ...videoCodec, '-c:a', audioCodec, '-f', format, ...extra, 'pipe:1'];
  const ffmpeg = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  ffmpeg.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => ffmpeg.on('exit', (code) => resolve(code)));
  const out = createWriteStream(file);
  ffmpeg.stdout.pipe(out);
  const timer = setTimeout(() => ffmpeg.kill('SIGKILL'), 120000);
  const code = await exited;
  clearTimeout(timer);
  await finished(out);
  assert.equal(code, 0, `ffmpeg failed: ${stderr}`);
  return file;
}

const liveWebm = (file, videoCodec) => recordThroughPipe(file, {
  videoCodec, audioCodec: 'libopus', format: 'webm', extra: ['-live', '1', '-cluster_time_limit', '1000'],
});

/** Seconds in an xs:duration such as "PT4.0S" or "PT0H0M4.040S". */
function isoSeconds(text) {
  const m = /^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(text);
  assert.ok(m, `an ISO 8601 duration: ${text}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

async function fetchText(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(30000) });
  const body = await res.text();
  assert.equal(res.status, 200, `${url}: ${res.status} ${body}`);
  return body;
}

/**
 * The ready video `id` lasts `seconds`: in the API, in the DASH manifest's
 * mediaPresentationDuration, and in the sum of each HLS media playlist's
 * segments; one segment of each kind is served.
 */
async function expectPlayableFor(id, seconds) {
  const video = await waitForStatus(web.url, id, 'ready');
  assert.ok(Math.abs(video.duration - seconds) <= TOLERANCE,
    `the API's duration ${video.duration} is ${seconds} s`);

  const base = `${web.url}/content/${id}/`;
  const mpd = await fetchText(base + 'manifest.mpd');
  const presentation = /mediaPresentationDuration="([^"]+)"/.exec(mpd)?.[1];
  assert.ok(presentation, 'the MPD states its duration');
  assert.ok(Math.abs(isoSeconds(presentation) - seconds) <= TOLERANCE,
    `mediaPresentationDuration ${presentation} is ${seconds} s`);
  const dashSegment = dashFiles(mpd).find((f) => f.endsWith('.m4s') && !f.includes('init'));
  assert.ok(dashSegment, 'the MPD names media segments');
  const segment = await fetch(base + dashSegment);
  assert.equal(segment.status, 200, dashSegment);
  assert.ok((await segment.arrayBuffer()).byteLength > 0, `${dashSegment} has bytes`);

  const master = await fetchText(base + 'master.m3u8');
  const playlists = hlsUris(master).filter((u) => u.endsWith('.m3u8'));
  assert.ok(playlists.length > 0, 'the master playlist names media playlists');
  for (const name of playlists) {
    const playlist = await fetchText(base + name);
    assert.match(playlist, /#EXT-X-ENDLIST/, `${name} is complete`);
    const total = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].reduce((s, m) => s + Number(m[1]), 0);
    assert.ok(Math.abs(total - seconds) <= TOLERANCE, `${name}'s segments last ${total} s`);
  }
  const thumbnail = await fetch(base + 'thumbnail.jpg');
  assert.equal(thumbnail.status, 200, 'a thumbnail');
  await thumbnail.arrayBuffer();
  return video;
}

test('a live-written WebM (VP8 + Opus, through a pipe) uploaded with POST /upload', async () => {
  const file = await liveWebm(path.join(scratch, 'recording.webm'),
    ['libvpx', '-deadline', 'realtime', '-b:v', '300k']);
  const facts = await probe(file);
  assert.equal(facts.format.duration, undefined, 'the file states no duration');
  assert.match(facts.format.format_name, /webm/);

  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  const video = await expectPlayableFor(res.json.id, SECONDS);
  assert.equal(video.title, 'recording.webm');
});

test('a live-written WebM (VP9 + Opus, through a pipe) uploaded with tus', async () => {
  const file = await liveWebm(path.join(scratch, 'recording-vp9.webm'),
    ['libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k']);
  assert.equal((await probe(file)).format.duration, undefined, 'the file states no duration');
  const bytes = await readFile(file);

  const tus = { 'Tus-Resumable': '1.0.0' };
  const created = await fetch(`${web.url}/api/uploads`, {
    method: 'POST',
    headers: { ...tus, 'Upload-Length': String(bytes.length),
      'Upload-Metadata': `filename ${Buffer.from('browser.webm').toString('base64')}` },
    signal: AbortSignal.timeout(30000),
  });
  assert.equal(created.status, 201, await created.text());
  const location = created.headers.get('location');
  const done = await fetch(`${web.url}${location}`, {
    method: 'PATCH',
    headers: { ...tus, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0' },
    body: bytes,
    signal: AbortSignal.timeout(120000),
  });
  assert.equal(done.status, 204, await done.text());
  const id = done.headers.get('stream-media-id');
  assert.match(id ?? '', /^[0-9a-z]{26}$/, 'the answer names the new video');
  const video = await expectPlayableFor(id, SECONDS);
  assert.equal(video.title, 'browser.webm');
});

test('a live-written MPEG-TS (H.264 + AAC, through a pipe) is accepted', async () => {
  const file = await recordThroughPipe(path.join(scratch, 'capture.ts'), {
    videoCodec: ['libx264', '-preset', 'ultrafast'], audioCodec: 'aac', format: 'mpegts',
  });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  await expectPlayableFor(res.json.id, SECONDS);
});

test('a live-written WebM with no media to measure is refused with 422', async () => {
  const whole = await readFile(await liveWebm(path.join(scratch, 'for-header.webm'),
    ['libvpx', '-deadline', 'realtime', '-b:v', '300k']));
  // Its header and the first bytes of its first cluster.
  const cluster = whole.indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]));
  assert.ok(cluster > 0, 'the recording has a cluster');
  const file = path.join(scratch, 'header-only.webm');
  await writeFile(file, whole.subarray(0, cluster + 12));
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 422, res.text);
  assert.match(res.json.error, /length cannot be determined/);
  // The server still serves.
  assert.equal((await fetch(`${web.url}/api/videos`)).status, 200);
});
