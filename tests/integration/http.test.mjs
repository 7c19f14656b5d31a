// The web server's HTTP behaviour and its answers to bad input, against a real
// streamgrid-web process. Nothing here waits for a transcode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdir, readFile, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { startWeb, makeTestVideo, uploadFile, tempDir, waitFor, run } from '../lib/streamgrid.mjs';

let web;
let scratch;
const MAX_UPLOAD = 64 * 1024 * 1024;

before(async () => {
  scratch = await tempDir();
  web = await startWeb({ args: ['--max-upload-bytes', String(MAX_UPLOAD)] });
});

after(async () => {
  await web?.stop();
});

// Files the server keeps for accepted uploads; a rejected upload must leave none.
async function storedFiles() {
  const found = [];
  for (const dir of ['content', 'work/uploads']) {
    const root = path.join(web.dataDir, dir);
    let entries = [];
    try {
      entries = await readdir(root, { recursive: true });
    } catch { /* not created yet */ }
    found.push(...entries.map((e) => path.join(dir, e)));
  }
  return found;
}

async function assertNothingStored() {
  assert.deepEqual(await storedFiles(), []);
  const list = await (await fetch(`${web.url}/api/videos`)).json();
  assert.deepEqual(list.videos, []);
}

/** Sends raw bytes on a fresh TCP connection; resolves with everything the server sent. */
function rawRequest(text, { endAfterWrite = false } = {}) {
  const { port } = new URL(web.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => {
      socket.write(text);
      if (endAfterWrite) socket.end();
    });
    let data = '';
    socket.on('data', (d) => { data += d.toString('latin1'); });
    socket.on('end', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(20000, () => { socket.destroy(); reject(new Error('raw request timed out')); });
  });
}

test('healthz answers', async () => {
  const res = await fetch(`${web.url}/healthz`);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).status, 'ok');
});

test('unknown ids are 404 everywhere', async () => {
  const id = '01jzzzzzzzzzzzzzzzzzzzzzzz';
  for (const [method, p] of [['GET', `/api/videos/${id}`], ['DELETE', `/api/videos/${id}`],
    ['GET', `/videos/${id}`], ['GET', `/content/${id}/manifest.mpd`],
    ['GET', '/api/videos/not-an-id'], ['GET', '/no/such/page']]) {
    const res = await fetch(`${web.url}${p}`, { method });
    assert.equal(res.status, 404, `${method} ${p}`);
    // Reads are open to every origin; answers to writes grant no origin (origin.test.mjs).
    assert.equal(res.headers.get('access-control-allow-origin'), method === 'GET' ? '*' : null,
      `CORS on 404 of ${method} ${p}`);
    await res.arrayBuffer();
  }
});

test('CORS preflight is answered 204 with the headers players need', async () => {
  const res = await fetch(`${web.url}/content/x/manifest.mpd`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'GET',
      'Access-Control-Request-Headers': 'range' },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('access-control-allow-headers'), /Range/);
  assert.match(res.headers.get('access-control-allow-methods'), /GET/);
  // A read preflight grants reads only; writes have their own rules (origin.test.mjs).
  assert.doesNotMatch(res.headers.get('access-control-allow-methods'), /DELETE|POST/);
});

test('a write preflight from another origin is not granted', async () => {
  const res = await fetch(`${web.url}/api/videos/01jzzzzzzzzzzzzzzzzzzzzzzz`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://example.test', 'Access-Control-Request-Method': 'DELETE' },
  });
  assert.equal(res.status, 403);
  assert.ok((await res.json()).error);
  assert.equal(res.headers.get('access-control-allow-origin'), null);
  assert.equal(res.headers.get('access-control-allow-methods'), null);
});

test('traversal in content paths is 400 and never reaches the filesystem', async () => {
  // A file outside the content store that a traversal would reach.
  await writeFile(path.join(web.dataDir, 'secret.txt'), 'secret');
  const id = '01jzzzzzzzzzzzzzzzzzzzzzzz';
  const attempts = [
    `/content/${id}/..`, `/content/${id}/%2e%2e`, `/content/${id}/%2E%2E%2Fsecret.txt`,
    `/content/%2e%2e/secret.txt`, `/content/${id}/..%2f..%2fsecret.txt`,
    `/content/${id}/a%5c..%5csecret.txt`, `/content/${id}/a%00b`, `/content//etc/passwd`,
    `/content/${id}/.hidden`, `/content/${id}/a/b`, `/static/..%2f..%2fCMakeLists.txt`,
  ];
  for (const p of attempts) {
    // fetch() would normalise "..", so the request line is sent as is.
    const reply = await rawRequest(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(reply, /^HTTP\/1\.1 400 /, p);
    assert.doesNotMatch(reply, /secret/, p);
  }
});

test('malformed requests and oversized headers get clear errors', async () => {
  const garbage = await rawRequest('NOT HTTP AT ALL\r\n\r\n');
  assert.match(garbage, /^HTTP\/1\.1 400 /);
  const big = await rawRequest(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  assert.match(big, /^HTTP\/1\.1 431 /);
  const res = await fetch(`${web.url}/api/videos`, { method: 'PUT' });
  assert.equal(res.status, 405);
  assert.match(res.headers.get('allow'), /GET/);
});

test('keep-alive serves several requests on one connection', async () => {
  const reply = await rawRequest('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
    'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(reply.match(/HTTP\/1\.1 200 /g)?.length, 2);
});

test('list paging parameters are validated', async () => {
  for (const q of ['limit=0', 'limit=abc', 'limit=5000', 'status=bogus', 'page_token=zz']) {
    const res = await fetch(`${web.url}/api/videos?${q}`);
    assert.equal(res.status, 400, q);
    assert.ok((await res.json()).error, q);
  }
});

test('bad uploads get 4xx with a message and leave nothing behind', async () => {
  const text = path.join(scratch, 'notes.mp4');
  await writeFile(text, 'this is plain text, not a video\n'.repeat(100));
  const empty = path.join(scratch, 'empty.mp4');
  await writeFile(empty, '');
  const good = await makeTestVideo(path.join(scratch, 'good.mp4'), { seconds: 2, width: 320, height: 180 });
  const truncated = path.join(scratch, 'truncated.mp4');
  const bytes = await readFile(good);
  await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  // Index at the front: the cut-off half still looks whole to ffprobe.
  const faststart = path.join(scratch, 'faststart.mp4');
  await run('ffmpeg', ['-v', 'error', '-y', '-i', good, '-c', 'copy', '-movflags', '+faststart', faststart]);
  const fsBytes = await readFile(faststart);
  const truncatedFaststart = path.join(scratch, 'truncated-faststart.mp4');
  await writeFile(truncatedFaststart, fsBytes.subarray(0, Math.floor(fsBytes.length / 2)));
  // A still image is a media file, but not a video.
  const image = path.join(scratch, 'still.mp4');
  await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x64',
    '-frames:v', '1', '-f', 'image2', '-c:v', 'png', image]);

  // Text that FFmpeg would open as a playlist or list and follow: refused by
  // format (tests/integration/hostile_media.test.mjs has the full set).
  const playlist = path.join(scratch, 'playlist.mp4');
  await writeFile(playlist, `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n${good}\n#EXT-X-ENDLIST\n`);
  const concat = path.join(scratch, 'list.mp4');
  await writeFile(concat, `ffconcat version 1.0\nfile ${good}\n`);

  const cases = [
    [playlist, {}, [415]],
    [concat, {}, [415]],
    [text, {}, [415, 422]],
    [empty, {}, [422]],
    [truncated, {}, [422]],
    [truncatedFaststart, {}, [422]],
    [image, {}, [415, 422]],
    [good, { field: 'video' }, [400]],
  ];
  for (const [file, options, statuses] of cases) {
    const res = await uploadFile(web.url, file, options);
    assert.ok(statuses.includes(res.status), `${path.basename(file)} ${JSON.stringify(options)}: ` +
      `got ${res.status} ${res.text}`);
    assert.ok(res.json?.error?.length > 0, `error message for ${path.basename(file)}`);
  }

  // Not multipart at all.
  let res = await fetch(`${web.url}/upload`, { method: 'POST', body: 'x',
    headers: { 'Content-Type': 'text/plain' } });
  assert.equal(res.status, 415);
  assert.match((await res.json()).error, /multipart/);

  // Broken multipart framing: no closing boundary.
  res = await fetch(`${web.url}/upload`, {
    method: 'POST',
    headers: { 'Content-Type': 'multipart/form-data; boundary=XyZ' },
    body: '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\nabc',
  });
  assert.equal(res.status, 400);
  assert.ok((await res.json()).error);

  await assertNothingStored();
  assert.equal((await fetch(`${web.url}/healthz`)).status, 200, 'still serving');
});

test('an upload over --max-upload-bytes is refused with 413', async () => {
  // Declared length over the limit: refused before the body is read.
  const reply = await rawRequest('POST /upload HTTP/1.1\r\nHost: x\r\n' +
    'Content-Type: multipart/form-data; boundary=b\r\n' +
    `Content-Length: ${MAX_UPLOAD * 2}\r\n\r\n`);
  assert.match(reply, /^HTTP\/1\.1 413 /);

  // Chunked body that only turns out too large while streaming.
  const big = path.join(scratch, 'big.mp4');
  const handle = await open(big, 'w');
  const block = Buffer.alloc(1024 * 1024, 7);
  for (let i = 0; i < MAX_UPLOAD / block.length + 2; i++) await handle.write(block);
  await handle.close();
  const res = await uploadFile(web.url, big).catch((e) => ({ status: 'reset', error: e }));
  // The server answers 413 and closes; a client still sending may see the reset instead.
  assert.ok(res.status === 413 || res.status === 'reset', `got ${res.status}`);
  await waitFor(async () => (await storedFiles()).length === 0, { what: 'spool cleanup' });
  await assertNothingStored();
});

test('memory stays bounded during a large upload', async () => {
  // 256 MiB of non-video: streamed to disk, probed, rejected. Resident memory
  // must not grow anywhere near the upload's size.
  const server = await startWeb({ args: ['--max-upload-bytes', String(1024 * 1024 * 1024)] });
  try {
    const big = path.join(scratch, 'large.bin');
    const handle = await open(big, 'w');
    const block = Buffer.alloc(4 * 1024 * 1024, 1);
    for (let i = 0; i < 64; i++) await handle.write(block);
    await handle.close();
    const rss = async () => {
      const status = await readFile(`/proc/${server.process.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) * 1024;
    };
    const res = await uploadFile(server.url, big, { filename: 'large.mp4' });
    assert.ok([415, 422].includes(res.status), `got ${res.status}`);
    const peak = await rss();
    assert.ok(peak < 96 * 1024 * 1024, `peak RSS ${peak} bytes for a 256 MiB upload`);
  } finally {
    await server.stop();
  }
});
