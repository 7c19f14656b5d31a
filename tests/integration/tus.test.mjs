// Resumable uploads (tus 1.0 at /api/uploads) against real servers, in both
// modes (--single's local content, and a cluster of two storage nodes, R=2):
// an upload interrupted halfway survives a server restart and resumes from
// where it stopped, sending only the missing bytes; the finished file goes
// through the ingest and becomes a ready video whose original is the source,
// byte for byte. Then the protocol's refusals, termination, expiry, and the
// origin and token rules.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { readdir, readFile, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, tempDir, waitFor, waitForStatus, rm,
} from '../lib/streamgrid.mjs';

const TUS = { 'Tus-Resumable': '1.0.0' };
const PATCH_TYPE = 'application/offset+octet-stream';
const TOKEN = 'tus-test-token-0123456789abcdef';
const ALLOWED = 'https://app.example';

let scratch;
let video;        // the source file's bytes
let videoSha;
const cleanups = [];

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');
const b64 = (text) => Buffer.from(text).toString('base64');

/** A tus request: Tus-Resumable unless `headers` says otherwise. */
async function tus(url, method, target, { headers = {}, body } = {}) {
  const res = await fetch(`${url}${target}`, {
    method, headers: { ...TUS, ...headers }, body, signal: AbortSignal.timeout(120000),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* no body */ }
  return { status: res.status, headers: res.headers, json, text };
}

async function create(url, length, { filename = 'clip.mp4', headers = {} } = {}) {
  const res = await tus(url, 'POST', '/api/uploads', {
    headers: { 'Upload-Length': String(length), 'Upload-Metadata': `filename ${b64(filename)}`,
      ...headers },
  });
  assert.equal(res.status, 201, res.text);
  const location = res.headers.get('location');
  assert.match(location, /^\/api\/uploads\/[0-9a-f]{32}$/);
  assert.ok(Date.parse(res.headers.get('upload-expires')) > Date.now(), 'Upload-Expires ahead');
  return location;
}

async function patch(url, location, offset, bytes, headers = {}) {
  return tus(url, 'PATCH', location, {
    headers: { 'Content-Type': PATCH_TYPE, 'Upload-Offset': String(offset), ...headers },
    body: bytes,
  });
}

/** HEAD of an upload: { status, offset, length, headers }. */
async function head(url, location, headers = {}) {
  const res = await tus(url, 'HEAD', location, { headers });
  return {
    status: res.status, headers: res.headers,
    offset: Number(res.headers.get('upload-offset')), length: Number(res.headers.get('upload-length')),
  };
}

/**
 * Starts a PATCH of `total` declared bytes and sends `bytes` of them.
 * Resolves once they are handed to the kernel, with { close, done }: close()
 * ends the connection without the rest, as a dropped network or a closed tab
 * does; done resolves with the status (or 'dropped').
 */
async function partialPatch(url, location, offset, total, bytes) {
  const target = new URL(`${url}${location}`);
  const req = http.request({
    host: target.hostname, port: target.port, path: target.pathname, method: 'PATCH',
    headers: { ...TUS, 'Content-Type': PATCH_TYPE, 'Upload-Offset': String(offset),
      'Content-Length': String(total) },
  });
  const done = new Promise((resolve) => {
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', () => resolve('dropped'));
  });
  await new Promise((resolve) => req.write(bytes, resolve));
  return { close: () => req.socket.end(), done };
}

async function tusFiles(web) {
  try {
    return (await readdir(path.join(web.dataDir, 'work', 'uploads', 'tus'))).sort();
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

before(async () => {
  scratch = await tempDir('streamgrid-tus-');
  const file = await makeTestVideo(path.join(scratch, 'source.mp4'),
    { width: 640, height: 360, seconds: 4 });
  video = await readFile(file);
  videoSha = sha(video);
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** The whole resumable flow on a server started by `start(dataDir)`. */
async function interruptRestartResume(start) {
  const dataDir = path.join(scratch, `web-${Date.now()}`);
  let web = await start(dataDir);
  cleanups.push(() => web.stop());
  const location = await create(web.url, video.length, { filename: 'C:\\clips\\holiday.mp4' });
  let state = await head(web.url, location);
  assert.equal(state.status, 200);
  assert.equal(state.offset, 0);
  assert.equal(state.length, video.length);
  assert.equal(state.headers.get('cache-control'), 'no-store');
  assert.equal(state.headers.get('tus-resumable'), '1.0.0');
  assert.ok(state.headers.get('upload-metadata').startsWith(`filename ${b64('C:\\clips\\holiday.mp4')}`),
    'HEAD gives the metadata back');

  // Half of the file, then the connection goes away mid-PATCH.
  const half = Math.floor(video.length / 2);
  const first = await partialPatch(web.url, location, 0, video.length, video.subarray(0, half));
  first.close();
  await first.done;
  // What arrived is kept and made durable: the offset reaches the half.
  state = await waitFor(async () => {
    const s = await head(web.url, location);
    return s.offset === half ? s : null;
  }, { timeoutMs: 60000, what: 'the offset of the interrupted PATCH' });

  // The partial upload survives a restart of the server.
  await web.stop();
  web = await start(dataDir);
  state = await head(web.url, location);
  assert.equal(state.status, 200);
  assert.equal(state.offset, half, 'offset after the restart');

  // A PATCH at another offset is refused and changes nothing.
  for (const wrong of [0, half - 1, half + 1]) {
    const res = await patch(web.url, location, wrong, video.subarray(wrong, wrong + 10));
    assert.equal(res.status, 409, `PATCH at ${wrong}: ${res.text}`);
  }
  assert.equal((await head(web.url, location)).offset, half);

  // The rest, only the rest: the final PATCH answers once the video is accepted.
  const rest = video.subarray(state.offset);
  assert.equal(rest.length, video.length - half, 'only the missing bytes are sent again');
  const done = await waitFor(async () => {
    const res = await patch(web.url, location, state.offset, rest);
    return res.status === 423 ? null : res;  // the dropped PATCH may still hold it
  }, { timeoutMs: 60000, what: 'the upload to be free' });
  assert.equal(done.status, 204, done.text);
  assert.equal(Number(done.headers.get('upload-offset')), video.length);
  const id = done.headers.get('stream-media-id');
  assert.match(id ?? '', /^[0-9a-z]{26}$/, 'the answer names the new video');

  // HEAD and a repeated (empty) final PATCH still name it.
  state = await head(web.url, location);
  assert.equal(state.offset, video.length);
  assert.equal(state.headers.get('stream-media-id'), id);
  const again = await patch(web.url, location, video.length, new Uint8Array(0));
  assert.equal(again.status, 204, again.text);
  assert.equal(again.headers.get('stream-media-id'), id);

  const ready = await waitForStatus(web.url, id, 'ready');
  assert.equal(ready.title, 'holiday.mp4', 'titled by the file name');
  const original = Buffer.from(await (await fetch(`${web.url}/content/${id}/original`)).arrayBuffer());
  assert.equal(sha(original), videoSha, 'the stored original is the source');
  // Nothing of the upload's bytes is left, only its small record.
  assert.deepEqual((await tusFiles(web)).filter((f) => f.endsWith('.part')), []);
  return web;
}

test('single: interrupted, restarted, resumed, ready, same bytes', async () => {
  await interruptRestartResume((dataDir) => startWeb({ dataDir }));
});

test('cluster (two nodes, R=2): interrupted, restarted, resumed, ready, same bytes', async () => {
  const nodes = [];
  for (let i = 0; i < 2; i++) {
    const node = await startStorage({ dataDir: path.join(scratch, `node${i}`) });
    nodes.push(node);
    cleanups.push(() => node.stop());
  }
  await interruptRestartResume((dataDir) => startWeb({
    dataDir,
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2'],
  }));
});

test('the protocol: capabilities, refusals, termination, a refused file', async () => {
  const web = await startWeb({ args: ['--max-upload-bytes', String(10 * 1024 * 1024)] });
  cleanups.push(() => web.stop());

  const options = await fetch(`${web.url}/api/uploads`, { method: 'OPTIONS' });
  assert.equal(options.status, 204);
  assert.equal(options.headers.get('tus-version'), '1.0.0');
  assert.equal(options.headers.get('tus-extension'), 'creation,termination,expiration');
  assert.equal(options.headers.get('tus-max-size'), String(10 * 1024 * 1024));

  // 412 without the version, naming the one spoken.
  for (const version of [undefined, '0.2.2']) {
    const res = await fetch(`${web.url}/api/uploads`, {
      method: 'POST', headers: { 'Upload-Length': '10', ...(version ? { 'Tus-Resumable': version } : {}) },
    });
    assert.equal(res.status, 412);
    assert.equal(res.headers.get('tus-version'), '1.0.0');
    assert.ok((await res.json()).error);
  }
  // Creation: a length is needed, within the limit; metadata is strict.
  let res = await tus(web.url, 'POST', '/api/uploads');
  assert.equal(res.status, 400, res.text);
  assert.match(res.json.error, /Upload-Length/);
  res = await tus(web.url, 'POST', '/api/uploads', { headers: { 'Upload-Length': '-5' } });
  assert.equal(res.status, 400);
  res = await tus(web.url, 'POST', '/api/uploads',
    { headers: { 'Upload-Length': String(10 * 1024 * 1024 + 1) } });
  assert.equal(res.status, 413, res.text);
  for (const metadata of ['filename not*base64', 'filename YQ==,filename Yg==', 'filename YQ==,,']) {
    res = await tus(web.url, 'POST', '/api/uploads',
      { headers: { 'Upload-Length': '10', 'Upload-Metadata': metadata } });
    assert.equal(res.status, 400, `${metadata}: ${res.text}`);
    assert.match(res.json.error, /Upload-Metadata/);
  }
  res = await tus(web.url, 'POST', '/api/uploads',
    { headers: { 'Upload-Length': '10', 'Upload-Defer-Length': '1' } });
  assert.equal(res.status, 400);

  // Unknown and malformed ids.
  for (const id of ['0123456789abcdef0123456789abcdef', 'nope', '..%2F..%2Fetc']) {
    assert.equal((await head(web.url, `/api/uploads/${id}`)).status, 404, id);
    assert.equal((await patch(web.url, `/api/uploads/${id}`, 0, 'x')).status, 404, id);
    assert.equal((await tus(web.url, 'DELETE', `/api/uploads/${id}`)).status, 404, id);
  }

  const location = await create(web.url, video.length);
  res = await tus(web.url, 'PATCH', location,
    { headers: { 'Content-Type': 'application/octet-stream', 'Upload-Offset': '0' }, body: 'abc' });
  assert.equal(res.status, 415);
  res = await patch(web.url, location, 0, 'abc', { 'Upload-Offset': 'x' });
  assert.equal(res.status, 400);
  res = await patch(web.url, location, 0, video.subarray(0, 100), { 'Tus-Resumable': '2.0.0' });
  assert.equal(res.status, 412);
  // A body past the declared length changes nothing.
  const small = await create(web.url, 5);
  res = await patch(web.url, small, 0, 'abcdefgh');
  assert.equal(res.status, 413, res.text);
  assert.equal((await head(web.url, small)).offset, 0);

  // Two writers: while one PATCH holds the upload, another is refused (423).
  // The probe is an empty PATCH, which changes nothing should it come first;
  // a holder that lost that race (answered 423 itself) is started again.
  let holder = await partialPatch(web.url, location, 0, 1000, video.subarray(0, 10));
  const locked = await waitFor(async () => {
    const settled = await Promise.race([holder.done, Promise.resolve('pending')]);
    if (settled !== 'pending') {
      holder = await partialPatch(web.url, location, 0, 1000, video.subarray(0, 10));
    }
    const r = await patch(web.url, location, 0, new Uint8Array(0));
    return r.status === 423 ? r : null;
  }, { timeoutMs: 60000, what: 'a concurrent PATCH to be refused' });
  assert.match(locked.json.error, /another request/);
  holder.close();
  await holder.done;
  await waitFor(async () => (await head(web.url, location)).offset === 10,
    { what: 'the held PATCH to end' });

  // Termination.
  assert.ok((await tusFiles(web)).some((f) => location.endsWith(f.replace(/\.(part|json)$/, ''))));
  res = await tus(web.url, 'DELETE', location);
  assert.equal(res.status, 204);
  assert.equal((await head(web.url, location)).status, 404);
  assert.equal((await tus(web.url, 'DELETE', location)).status, 404);
  assert.ok(!(await tusFiles(web)).some((f) => location.endsWith(f.replace(/\.(part|json)$/, ''))));

  // Not a video: refused on the final PATCH with the ingest's words, and gone.
  const text = Buffer.from('#EXTM3U\n#EXTINF:1,\nhttp://example.com/x.ts\n');
  const playlist = await create(web.url, text.length, { filename: 'list.m3u8' });
  res = await patch(web.url, playlist, 0, text);
  assert.equal(res.status, 415, res.text);
  assert.ok(res.json.error.length > 0);
  assert.equal(res.headers.get('tus-resumable'), '1.0.0');
  assert.equal((await head(web.url, playlist)).status, 404);

  // X-HTTP-Method-Override for clients that cannot send PATCH or DELETE.
  const overridden = await create(web.url, 3);
  res = await tus(web.url, 'POST', overridden, { headers: { 'X-HTTP-Method-Override': 'PATCH',
    'Content-Type': PATCH_TYPE, 'Upload-Offset': '0' }, body: 'ab' });
  assert.equal(res.status, 204, res.text);
  assert.equal(res.headers.get('upload-offset'), '2');
  res = await tus(web.url, 'POST', overridden, { headers: { 'X-HTTP-Method-Override': 'DELETE' } });
  assert.equal(res.status, 204);
  assert.equal((await head(web.url, overridden)).status, 404);
});

test('expiry, and the origin and token rules of writes', async () => {
  const tokenFile = path.join(scratch, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`);
  await chmod(tokenFile, 0o600);
  const web = await startWeb({ args: ['--upload-expiry', '3s', '--api-token-file', tokenFile,
    '--allowed-origins', ALLOWED] });
  cleanups.push(() => web.stop());
  const auth = { Authorization: `Bearer ${TOKEN}` };

  // An allowed origin's PATCH (first: the upload expires 3 s after it) gets
  // the tus headers exposed.
  const location = await create(web.url, 10, { headers: auth });
  let res = await patch(web.url, location, 0, 'abc', { ...auth, Origin: ALLOWED });
  assert.equal(res.status, 204, res.text);
  assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(res.headers.get('access-control-expose-headers'), /Upload-Offset/);
  assert.match(res.headers.get('access-control-expose-headers'), /Stream-Media-Id/);
  const expires = Date.parse(res.headers.get('upload-expires'));
  assert.ok(expires > Date.now() - 1000 && expires < Date.now() + 60000, 'Upload-Expires ~3 s on');

  // Every method but OPTIONS needs the token (checked before the upload is
  // looked up)...
  assert.equal((await fetch(`${web.url}/api/uploads`, { method: 'OPTIONS' })).status, 204);
  res = await tus(web.url, 'POST', '/api/uploads', { headers: { 'Upload-Length': '10' } });
  assert.equal(res.status, 401, res.text);
  assert.equal((await head(web.url, location)).status, 401);
  assert.equal((await patch(web.url, location, 3, 'def')).status, 401);
  assert.equal((await tus(web.url, 'DELETE', location)).status, 401);
  // ...and a page of a foreign origin is refused even with it.
  const evil = { ...auth, Origin: 'https://evil.example' };
  assert.equal((await head(web.url, location, evil)).status, 403);
  assert.equal((await patch(web.url, location, 3, 'def', evil)).status, 403);
  assert.equal((await tus(web.url, 'POST', '/api/uploads',
    { headers: { ...evil, 'Upload-Length': '10' } })).status, 403);

  // An allowed origin's preflight grants the tus headers.
  const preflight = await fetch(`${web.url}${location}`, { method: 'OPTIONS', headers: {
    Origin: ALLOWED, 'Access-Control-Request-Method': 'PATCH',
    'Access-Control-Request-Headers': 'tus-resumable,upload-offset,content-type,authorization' } });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get('access-control-allow-origin'), ALLOWED);
  assert.match(preflight.headers.get('access-control-allow-headers'), /upload-offset/i);
  assert.equal(preflight.headers.get('tus-version'), '1.0.0');

  // Left alone, it expires: answered 404 and its files deleted.
  await waitFor(async () => (await head(web.url, location, auth)).status === 404,
    { timeoutMs: 60000, what: 'the upload to expire' });
  await waitFor(async () => (await tusFiles(web)).length === 0,
    { timeoutMs: 60000, what: 'the expired upload\'s files to be deleted' });
});

test('a server killed mid-PATCH resumes at what its disk holds', async () => {
  const dataDir = path.join(scratch, 'killed-web');
  let web = await startWeb({ dataDir });
  cleanups.push(() => web.stop());
  const location = await create(web.url, video.length, { filename: 'killed.mp4' });
  const third = Math.floor(video.length / 3);
  const cut = await partialPatch(web.url, location, 0, video.length, video.subarray(0, third));
  await web.kill();  // no fsync, no answer: whatever write() reached the file
  await cut.done;
  web = await startWeb({ dataDir });
  const state = await head(web.url, location);
  assert.equal(state.status, 200);
  assert.ok(state.offset >= 0 && state.offset <= third, `offset ${state.offset} of ${third} sent`);
  const done = await patch(web.url, location, state.offset, video.subarray(state.offset));
  assert.equal(done.status, 204, done.text);
  const id = done.headers.get('stream-media-id');
  const original = Buffer.from(await (await fetch(`${web.url}/content/${id}/original`)).arrayBuffer());
  assert.equal(sha(original), videoSha, 'the stored original is the source');
});

test('cluster: a final PATCH that cannot store the original keeps the bytes for a retry', async () => {
  const nodes = [];
  for (let i = 0; i < 2; i++) {
    const node = await startStorage({ dataDir: path.join(scratch, `retry-node${i}`) });
    nodes.push(node);
    cleanups.push(() => node.stop());
  }
  const web = await startWeb({
    dataDir: path.join(scratch, 'retry-web'),
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2'],
  });
  cleanups.push(() => web.stop());
  const location = await create(web.url, video.length, { filename: 'retry.mp4' });
  const half = Math.floor(video.length / 2);
  assert.equal((await patch(web.url, location, 0, video.subarray(0, half))).status, 204);

  // With one of two nodes down, R=2 copies cannot be made: a 5xx, and the
  // upload stays complete on this server.
  await nodes[1].stop();
  const refused = await patch(web.url, location, half, video.subarray(half));
  assert.ok(refused.status >= 500, `${refused.status} ${refused.text}`);
  const state = await head(web.url, location);
  assert.equal(state.status, 200);
  assert.equal(state.offset, video.length);
  assert.equal(state.headers.get('stream-media-id'), null);

  // Once the node is back, the empty final PATCH finishes it.
  await nodes[1].restart();
  const done = await waitFor(async () => {
    const res = await patch(web.url, location, video.length, new Uint8Array(0));
    return res.status === 204 ? res : null;
  }, { timeoutMs: 120000, intervalMs: 500, what: 'the retried final PATCH to be accepted' });
  const id = done.headers.get('stream-media-id');
  const original = Buffer.from(await (await fetch(`${web.url}/content/${id}/original`)).arrayBuffer());
  assert.equal(sha(original), videoSha, 'the stored original is the source');
});
