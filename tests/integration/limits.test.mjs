// Limits under abuse: the open-file limit and floods of idle connections, the
// concurrent-upload bound, slow readers of cluster content, full disks (507),
// and server errors that reveal no internal addresses or paths.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { statfs, readdir, readFile as readFileFs } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, run, tempDir, waitFor, waitForStatus,
} from '../lib/streamgrid.mjs';

let scratch;
let smallVideo;  // a few hundred KB of real video
let smallBytes;
const running = [];  // processes to stop at the end

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');
const ADDRESS = /\b\d{1,3}(\.\d{1,3}){3}:\d+/;

/** Raw video in Matroska: large files quickly, with no encoding. */
async function makeRawVideo(file, { width, height, rate, seconds }) {
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
    `testsrc2=size=${width}x${height}:rate=${rate}:duration=${seconds}`,
    '-c:v', 'rawvideo', '-pix_fmt', 'yuv420p', file]);
  return file;
}

/** A request on a connection of its own (no pooling: idle ones may be dropped). */
function request(url, { method = 'GET', headers = {}, body, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const buffer = Buffer.concat(chunks);
        let json = null;
        try { json = JSON.parse(buffer.toString()); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, body: buffer, json });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url} timed out`)), timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(body);
  });
}

/** A multipart/form-data body with `data` as the field `file`. */
function multipart(data, filename) {
  const boundary = `----streamgrid${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; ` +
    `filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return {
    head, tail, body: Buffer.concat([head, data, tail]),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}

async function upload(url, data, filename = 'clip.mp4') {
  const form = multipart(data, filename);
  return request(`${url}/upload`, {
    method: 'POST', body: form.body, timeoutMs: 300000,
    headers: { 'Content-Type': form.contentType, Accept: 'application/json' },
  });
}

/** Opens `count` TCP connections that never send anything. */
async function openIdleConnections(url, count) {
  const { hostname, port } = new URL(url);
  const sockets = [];
  let closedByServer = 0;
  await Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    sockets.push(socket);
    socket.on('connect', resolve);
    socket.on('error', () => {});  // a reset from the server is expected
    socket.on('close', () => { closedByServer += 1; resolve(); });
    socket.setTimeout(30000, () => reject(new Error('connect timed out')));
  })));
  for (const s of sockets) s.setTimeout(0);
  return {
    closedByServer: () => closedByServer,
    close() { for (const s of sockets) s.destroy(); },
  };
}

/** `/healthz`, a content read and an upload, each on a fresh connection. */
async function checkServesEverything(url, id) {
  const health = await request(`${url}/healthz`);
  assert.equal(health.status, 200);
  const read = await request(`${url}/content/${id}/original`);
  assert.equal(read.status, 200);
  assert.equal(sha(read.body), sha(smallBytes));
  const up = await upload(url, smallBytes);
  assert.equal(up.status, 202, up.body.toString());
}

/** Free bytes of a file system a process mounted in its own namespace. */
async function freeBytes(pid, dir) {
  const s = await statfs(`/proc/${pid}/root${dir}`);
  return s.bavail * s.bsize;
}

/** A shell prefix running the program with a tmpfs of `size` mounted on `dir`, in its own mount namespace. */
function withTmpfs(dir, size) {
  return ['unshare', '-rm', 'sh', '-c',
    `mkdir -p '${dir}' && mount -t tmpfs -o size=${size} tmpfs '${dir}' && exec "$0" "$@"`];
}

before(async () => {
  scratch = await tempDir();
  smallVideo = await makeTestVideo(path.join(scratch, 'small.mp4'),
    { width: 160, height: 90, seconds: 2 });
  smallBytes = await readFileFs(smallVideo);
});

after(async () => {
  for (const p of running.reverse()) await p.stop();
});

test('with a soft open-file limit of 1024, the server raises it and 2000 idle connections lock nobody out', async () => {
  const web = await startWeb({ wrap: ['sh', '-c', 'ulimit -Sn 1024 && exec "$0" "$@"'] });
  running.push(web);
  const raised = /open-file limit: soft (\d+) \(was 1024\), hard (\d+)/.exec(web.log());
  assert.ok(raised, web.log());
  assert.equal(raised[1], raised[2], 'soft limit raised to the hard one');
  const first = await upload(web.url, smallBytes);
  assert.equal(first.status, 202, first.body.toString());

  const idle = await openIdleConnections(web.url, 2000);
  try {
    await checkServesEverything(web.url, first.json.id);
  } finally {
    idle.close();
  }
  await web.stop();
});

test('with a hard limit of 1024 too, idle connections give way and uploads are bounded', async () => {
  const web = await startWeb({
    wrap: ['sh', '-c', 'ulimit -n 1024 && exec "$0" "$@"'],
    args: ['--max-connections', '5000', '--max-concurrent-uploads', '1'],
  });
  running.push(web);
  assert.match(web.log(), /open-file limit: soft 1024 \(was 1024\), hard 1024/);
  assert.match(web.log(), /--max-connections 5000 does not fit in the open-file limit of 1024/);
  const first = await upload(web.url, smallBytes);
  assert.equal(first.status, 202, first.body.toString());

  // Far more idle connections than descriptors: the longest-idle make room.
  const idle = await openIdleConnections(web.url, 2000);
  try {
    await checkServesEverything(web.url, first.json.id);
    assert.ok(idle.closedByServer() > 1000, `${idle.closedByServer()} closed`);
  } finally {
    idle.close();
  }

  // One upload in progress (stalled in its body) takes the only upload slot.
  const { hostname, port } = new URL(web.url);
  const form = multipart(Buffer.alloc(4 << 20, 1), 'slow.mp4');
  const stalled = net.connect({ host: hostname, port: Number(port) });
  stalled.on('error', () => {});
  const continued = new Promise((resolve) => stalled.once('data', (d) => resolve(d.toString())));
  stalled.write(`POST /upload HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: ${form.contentType}\r\n` +
    `Content-Length: ${form.body.length}\r\nExpect: 100-continue\r\n\r\n`);
  // "100 Continue" comes when the handler starts reading: the slot is taken.
  assert.match(await continued, /^HTTP\/1\.1 100/);
  stalled.write(form.head);
  try {
    const refused = await upload(web.url, smallBytes);
    assert.equal(refused.status, 503, refused.body.toString());
    assert.ok(Number(refused.headers['retry-after']) > 0, 'Retry-After');
    assert.match(refused.json.error, /too many uploads in progress/);
    // Reads go on meanwhile.
    const read = await request(`${web.url}/content/${first.json.id}/original`);
    assert.equal(read.status, 200);
    assert.equal((await request(`${web.url}/healthz`)).status, 200);
  } finally {
    stalled.destroy();
  }
  // The slot comes back when the stalled upload goes away.
  await waitFor(async () => (await upload(web.url, smallBytes)).status === 202,
    { timeoutMs: 30000, intervalMs: 250, what: 'the upload slot to be free again' });
  await web.stop();
});

test('a full spool disk answers 507, leaves nothing behind and keeps serving', async () => {
  const dataDir = path.join(scratch, 'full-web');
  const spool = path.join(dataDir, 'work', 'uploads');
  const web = await startWeb({ dataDir, wrap: withTmpfs(spool, '8m') });
  running.push(web);
  const pid = web.process.pid;
  const free = await freeBytes(pid, spool);
  const big = await makeRawVideo(path.join(scratch, 'big-12m.mkv'),
    { width: 320, height: 240, rate: 10, seconds: 12 });
  const res = await upload(web.url, await readFileFs(big), 'big.mkv');
  assert.equal(res.status, 507, res.body.toString());
  assert.match(res.json.error, /out of storage space/);
  assert.doesNotMatch(res.json.error, new RegExp(dataDir.replaceAll('/', '\\/')));
  // The partial spool file is gone, nothing was stored.
  await waitFor(async () => (await freeBytes(pid, spool)) === free,
    { timeoutMs: 10000, what: 'the spool space to be free again' });
  assert.deepEqual(await readdir(`/proc/${pid}/root${spool}`), []);
  const videos = await (await fetch(`${web.url}/api/videos`)).json();
  assert.equal(videos.videos.length, 0);
  // Still serving, and an upload that fits is taken.
  assert.equal((await request(`${web.url}/healthz`)).status, 200);
  const ok = await upload(web.url, smallBytes);
  assert.equal(ok.status, 202, ok.body.toString());
  await web.stop();
});

test('cluster: slow readers hold no node stream, full nodes answer 507, errors hide addresses', async () => {
  const nodes = [];
  for (let i = 0; i < 2; i++) {
    const dataDir = path.join(scratch, `node${i}`);
    // Room for one large original and its renditions, not for two.
    nodes.push(await startStorage({
      dataDir, args: ['--log-level', 'debug'], wrap: withTmpfs(path.join(dataDir, 'data'), '80m'),
    }));
  }
  running.push(...nodes);
  const webDir = path.join(scratch, 'cluster-web');
  const web = await startWeb({
    dataDir: webDir,
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2'],
  });
  running.push(web);

  // Larger than every buffer between node and client (sockets, HTTP/2 windows).
  const big = await makeRawVideo(path.join(scratch, 'big-48m.mkv'),
    { width: 640, height: 360, rate: 10, seconds: 14 });
  const bigBytes = await readFileFs(big);
  const res = await upload(web.url, bigBytes, 'big.mkv');
  assert.equal(res.status, 202, res.body.toString());
  const id = res.json.id;
  await waitForStatus(web.url, id, 'ready', 300000);

  // A client that takes one chunk of the original and then stalls.
  const openGets = (node) => {
    const lines = [...node.log().matchAll(/(\d+) Get streams open/g)];
    return lines.length ? Number(lines.at(-1)[1]) : 0;
  };
  const received = [];
  let response;
  const firstChunk = new Promise((resolve, reject) => {
    const req = http.get(`${web.url}/content/${id}/original`, { agent: false }, (r) => {
      response = r;
      r.once('data', (chunk) => {
        received.push(chunk);
        r.pause();
        resolve();
      });
    });
    req.on('error', reject);
  });
  await firstChunk;
  assert.equal(response.statusCode, 200);
  // The nodes' streams end at their own pace, whatever the client does.
  await waitFor(() => nodes.every((n) => openGets(n) === 0),
    { timeoutMs: 10000, intervalMs: 100, what: 'the nodes to have no Get stream open' });
  // The client resumes and gets every byte.
  const done = new Promise((resolve, reject) => {
    response.on('data', (chunk) => received.push(chunk));
    response.on('end', resolve);
    response.on('error', reject);
  });
  response.resume();
  await done;
  assert.equal(sha(Buffer.concat(received)), sha(bigBytes));

  // Nodes out of space: 507, with nothing left on them.
  const free = await Promise.all(nodes.map((n) => freeBytes(n.process.pid, path.join(n.dataDir, 'data'))));
  const full = await upload(web.url, bigBytes, 'again.mkv');
  assert.equal(full.status, 507, full.body.toString());
  assert.match(full.json.error, /out of space/);
  assert.doesNotMatch(full.json.error, ADDRESS);
  for (const [i, n] of nodes.entries()) {
    await waitFor(async () => (await freeBytes(n.process.pid, path.join(n.dataDir, 'data'))) === free[i],
      { timeoutMs: 10000, what: `node ${i}'s space to be free again` });
  }
  assert.equal((await request(`${web.url}/healthz`)).status, 200);

  // With the nodes down, errors say what is wrong but not where.
  for (const n of nodes) await n.stop();
  const refused = await upload(web.url, smallBytes);
  assert.equal(refused.status, 503, refused.body.toString());
  const reads = [await request(`${web.url}/content/${id}/original`),
    await request(`${web.url}/content/${id}/manifest.mpd`)];
  for (const r of [refused, ...reads]) {
    assert.ok(r.status >= 500, `${r.status} ${r.body}`);
    assert.ok(r.json?.error, r.body.toString());
    assert.doesNotMatch(r.json.error, ADDRESS);
    assert.doesNotMatch(r.json.error, /127\.0\.0\.1/);
    for (const dir of [scratch, webDir]) assert.ok(!r.json.error.includes(dir), r.json.error);
    assert.match(r.json.error, /error id [0-9a-f]+/);
  }
  assert.match(refused.json.error, /not enough storage nodes are up/);
  // The detail went to the log under the same id.
  const errorId = /error id ([0-9a-f]+)/.exec(reads[0].json.error)[1];
  // Logged before the answer was sent, but the log reaches this process by
  // another pipe, which may be read after the answer.
  const logged = new RegExp(`error ${errorId} answered 50\\d: .*127\\.0\\.0\\.1:`);
  await waitFor(() => logged.test(web.log()), { timeoutMs: 10000, what: `error ${errorId} in the log` });
  await web.stop();
});
