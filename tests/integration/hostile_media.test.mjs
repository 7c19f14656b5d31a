// Hostile media against a real streamgrid-web with real ffprobe/ffmpeg:
// playlists, lists, manifests and images that would make FFmpeg read the
// server's files or fetch URLs are refused with 415, storing and fetching
// nothing; the duration and resolution caps answer 413; the transcode time
// limit fails a video with the reason; real videos still become ready.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, makeTestVideo, uploadFile, tempDir, waitFor, waitForStatus, playerFiles, run, rm,
} from '../lib/streamgrid.mjs';

let scratch;
let web;         // low caps, normal time limit
let hook;        // a local HTTP server that must never be asked for anything
let hookRequests = [];
let secret;      // a real video on the server's disk that playlists name
const accepted = [];  // ids of videos this test expects to be kept

const MAX_SECONDS = 4;
const MAX_RESOLUTION = '480x270';

before(async () => {
  scratch = await tempDir('streamgrid-hostile-');
  hook = http.createServer((req, res) => {
    hookRequests.push(`${req.method} ${req.url}`);
    res.writeHead(404).end();
  });
  await new Promise((resolve) => hook.listen(0, '127.0.0.1', resolve));
  // A playable segment: if FFmpeg followed a playlist to it, it would be
  // transcoded and published.
  secret = await makeTestVideo(path.join(scratch, 'secret.ts'),
    { seconds: 2, width: 320, height: 180, extra: ['-f', 'mpegts'] });
  web = await startWeb({
    args: ['--max-video-duration', String(MAX_SECONDS), '--max-video-resolution', MAX_RESOLUTION],
  });
});

after(async () => {
  await web?.stop();
  await new Promise((resolve) => (hook ? hook.close(resolve) : resolve()));
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// Directories of videos in the content store and leftovers in the spool.
async function storedIds(server) {
  let ids = [];
  try {
    ids = (await readdir(path.join(server.dataDir, 'content'))).filter((n) => !n.startsWith('.'));
  } catch { /* not created yet */ }
  return ids.sort();
}

async function spoolFiles(server) {
  try {
    return await readdir(path.join(server.dataDir, 'work', 'uploads'));
  } catch {
    return [];
  }
}

async function listedIds(server) {
  const res = await fetch(`${server.url}/api/videos?limit=100`);
  assert.equal(res.status, 200);
  return (await res.json()).videos.map((v) => v.id).sort();
}

// Nothing but the expected videos is listed or stored, and no upload is left
// in the spool.
async function assertOnlyAccepted(server) {
  const expected = [...accepted].sort();
  assert.deepEqual(await listedIds(server), expected);
  assert.deepEqual(await storedIds(server), expected);
  await waitFor(async () => (await spoolFiles(server)).length === 0, { what: 'an empty spool' });
}

async function uploadText(name, content) {
  const file = path.join(scratch, name.replace(/[^A-Za-z0-9._-]/g, '_'));
  await writeFile(file, content);
  return uploadFile(web.url, file, { filename: name });
}

function hlsPlaylist(uri) {
  return `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n${uri}\n#EXT-X-ENDLIST\n`;
}

function assertRefused(res, what, { status = 415, message } = {}) {
  assert.equal(res.status, status, `${what}: got ${res.status} ${res.text}`);
  assert.ok(res.json?.error?.length > 0, `${what}: a JSON error message`);
  if (message) assert.match(res.json.error, message, what);
  assert.ok(!res.json.error.includes(scratch) && !res.json.error.includes(web.dataDir),
    `${what}: no server paths in the message: ${res.json.error}`);
}

test('a normal MP4 becomes ready', async () => {
  const mp4 = await makeTestVideo(path.join(scratch, 'normal.mp4'),
    { seconds: 2, width: 320, height: 180 });
  const res = await uploadFile(web.url, mp4);
  assert.equal(res.status, 202, res.text);
  await waitForStatus(web.url, res.json.id);
  accepted.push(res.json.id);
});

test('playlists, lists, manifests and images are refused with 415, storing and fetching nothing', async () => {
  const port = hook.address().port;
  const cases = [
    ['HLS playlist naming a local file', 'playlist.m3u8', hlsPlaylist(secret), /HLS playlist/],
    ['the same with file:', 'playlist.m3u8', hlsPlaylist(`file:${secret}`), /HLS playlist/],
    ['the same named like a video', 'holiday.mp4', hlsPlaylist(secret), /HLS playlist/],
    ['HLS playlist naming a URL', 'remote.m3u8',
      hlsPlaylist(`http://127.0.0.1:${port}/segment.ts`), /HLS playlist/],
    ['ffconcat list', 'list.ffconcat', `ffconcat version 1.0\nfile ${secret}\n`, /concat list/],
    ['DASH manifest with a file BaseURL', 'manifest.mpd',
      '<?xml version="1.0"?>\n' +
      '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" ' +
      'minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">\n' +
      `  <BaseURL>file://${path.dirname(secret)}/</BaseURL>\n` +
      '  <Period><AdaptationSet mimeType="video/mp2t"><Representation id="1" bandwidth="100000">' +
      `<BaseURL>${path.basename(secret)}</BaseURL></Representation></AdaptationSet></Period>\n</MPD>\n`,
      /DASH manifest/],
  ];
  for (const [what, name, content, message] of cases) {
    assertRefused(await uploadText(name, content), what, { message });
  }

  // An image sequence pattern and single images.
  const jpeg = path.join(scratch, 'frame.jpg');
  await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x64',
    '-frames:v', '1', jpeg]);
  assertRefused(await uploadFile(web.url, jpeg, { filename: 'img%03d.jpg' }), 'JPEG as img%03d.jpg',
    { message: /image/ });
  const png = path.join(scratch, 'frame.png');
  await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x64',
    '-frames:v', '1', png]);
  assertRefused(await uploadFile(web.url, png), 'PNG', { message: /image/ });

  // Every message says what is accepted instead.
  const res = await uploadText('playlist.m3u8', hlsPlaylist(secret));
  assert.match(res.json.error, /MP4/);
  assert.match(res.json.error, /WebM/);

  await assertOnlyAccepted(web);
  assert.deepEqual(hookRequests, [], 'the test HTTP server was asked for nothing');
});

test('a video over the duration cap is refused with 413', async () => {
  const long = await makeTestVideo(path.join(scratch, 'long.mp4'),
    { seconds: MAX_SECONDS + 2, width: 160, height: 90, rate: 10, audio: false });
  assertRefused(await uploadFile(web.url, long), 'too long',
    { status: 413, message: new RegExp(`longest accepted here is ${MAX_SECONDS} seconds`) });
  await assertOnlyAccepted(web);
});

test('a video over the resolution cap is refused with 413, either way up', async () => {
  const wide = await makeTestVideo(path.join(scratch, 'wide.mp4'),
    { seconds: 1, width: 640, height: 360, rate: 10, audio: false });
  assertRefused(await uploadFile(web.url, wide), 'too large',
    { status: 413, message: /640x360.*480x270/ });
  // 270x480 is the cap held upright: accepted (and kept for the end).
  const upright = await makeTestVideo(path.join(scratch, 'upright.mp4'),
    { seconds: 1, width: 270, height: 480, rate: 10, audio: false });
  const res = await uploadFile(web.url, upright);
  assert.equal(res.status, 202, res.text);
  await waitForStatus(web.url, res.json.id);
  accepted.push(res.json.id);
  await assertOnlyAccepted(web);
});

test('a WebM still becomes ready', async () => {
  const webm = path.join(scratch, 'recording.webm');
  await run('ffmpeg', ['-v', 'error', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15:duration=2',
    '-f', 'lavfi', '-i', 'sine=frequency=440:duration=2',
    '-c:v', 'libvpx', '-b:v', '300k', '-deadline', 'realtime', '-c:a', 'libopus', '-shortest', webm]);
  const res = await uploadFile(web.url, webm);
  assert.equal(res.status, 202, res.text);
  await waitForStatus(web.url, res.json.id);
  accepted.push(res.json.id);
});

test('a transcode over its time limit fails with the reason', async () => {
  const server = await startWeb({
    args: ['--transcode-time-factor', '0.001', '--transcode-time-floor', '0'],
  });
  try {
    const mp4 = await makeTestVideo(path.join(scratch, 'slow.mp4'),
      { seconds: 2, width: 320, height: 180 });
    const res = await uploadFile(server.url, mp4);
    assert.equal(res.status, 202, res.text);
    const video = await waitForStatus(server.url, res.json.id, 'failed');
    assert.match(video.error, /time limit/);
    // Only the original is kept for a failed video.
    const files = await readdir(path.join(server.dataDir, 'content', res.json.id));
    assert.deepEqual(files.filter((f) => !f.startsWith('.')), ['original']);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  } finally {
    await server.stop();
  }
});

test('after all of it the server serves and earlier videos are intact', async () => {
  assert.equal((await fetch(`${web.url}/healthz`)).status, 200);
  await assertOnlyAccepted(web);
  for (const id of accepted) {
    const video = await (await fetch(`${web.url}/api/videos/${id}`)).json();
    assert.equal(video.status, 'ready', id);
    for (const name of await playerFiles(web.url, id)) {
      const res = await fetch(`${web.url}/content/${id}/${name}`);
      assert.equal(res.status, 200, `${id}/${name}`);
      assert.ok((await res.arrayBuffer()).byteLength > 0, `${id}/${name} not empty`);
    }
  }
  assert.deepEqual(hookRequests, []);
});
