// The web server's in-memory content cache, against a real streamgrid-web
// process: answers from the cache (and from the uncached path for files over
// --content-cache-max-file-bytes) are byte-for-byte and header-for-header what
// the store holds; changes made elsewhere show after the revalidation TTL and
// this server's deletes at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { startWeb, makeTestVideo, uploadFile, tempDir, waitFor, waitForStatus, playerFiles }
  from '../lib/streamgrid.mjs';

const MAX_CACHED = 4096;  // init segments and playlists fit; media segments do not
let web;
let id;
let files;
let src;

before(async () => {
  const scratch = await tempDir();
  web = await startWeb({ args: ['--content-cache-bytes', String(8 << 20),
    '--content-cache-max-file-bytes', String(MAX_CACHED)] });
  src = path.join(scratch, 'src.mp4');
  await makeTestVideo(src, { width: 320, height: 180, seconds: 4 });
  const up = await uploadFile(web.url, src);
  assert.equal(up.status, 202, up.text);
  id = up.json.id;
  await waitForStatus(web.url, id, 'ready');
  files = await playerFiles(web.url, id);
});

after(async () => {
  await web?.stop();
});

const onDisk = (name) => readFile(path.join(web.dataDir, 'content', id, name));
const url = (name) => `${web.url}/content/${id}/${name}`;

async function sizes() {
  const out = { small: [], large: [] };
  for (const name of files) {
    ((await stat(path.join(web.dataDir, 'content', id, name))).size <= MAX_CACHED
      ? out.small : out.large).push(name);
  }
  return out;
}

test('cached and uncached files are served as stored, with the same headers each time', async () => {
  const { small, large } = await sizes();
  assert.ok(small.some((n) => n.endsWith('.m4s')), `no small segment among ${files}`);
  assert.ok(large.length > 0, `no file over ${MAX_CACHED} bytes among ${files}`);
  for (const name of files) {
    const want = await onDisk(name);
    let first;
    for (let i = 0; i < 3; i++) {  // a miss, then hits (or uncached reads)
      const res = await fetch(url(name));
      assert.equal(res.status, 200, name);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), want, name);
      assert.equal(res.headers.get('content-length'), String(want.length), name);
      assert.equal(res.headers.get('accept-ranges'), 'bytes', name);
      assert.equal(res.headers.get('access-control-allow-origin'), '*', name);
      assert.ok(res.headers.get('etag'), name);
      const cc = res.headers.get('cache-control');
      // Segments and the storyboard never change under their names.
      const immutable = name.endsWith('.m4s') || name.startsWith('storyboard.');
      assert.equal(cc, immutable ? 'public, max-age=31536000, immutable'
        : name.endsWith('.m3u8') ? 'public, max-age=1' : 'public, max-age=60', name);
      const seen = [res.headers.get('etag'), res.headers.get('content-type'), cc];
      if (first) assert.deepEqual(seen, first, name); else first = seen;
    }
  }
});

test('ranges, 304 and HEAD behave the same from the cache and from the store', async () => {
  const { small, large } = await sizes();
  for (const name of [small.find((n) => n.endsWith('.m4s')), large[0]]) {
    const want = await onDisk(name);
    await fetch(url(name)).then((r) => r.arrayBuffer());  // cached if it fits
    const ranged = await fetch(url(name), { headers: { Range: 'bytes=10-99' } });
    assert.equal(ranged.status, 206, name);
    assert.equal(ranged.headers.get('content-range'), `bytes 10-99/${want.length}`, name);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), want.subarray(10, 100), name);
    const suffix = await fetch(url(name), { headers: { Range: 'bytes=-7' } });
    assert.equal(suffix.status, 206, name);
    assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), want.subarray(want.length - 7));
    const outside = await fetch(url(name), { headers: { Range: `bytes=${want.length}-` } });
    assert.equal(outside.status, 416, name);
    assert.equal(outside.headers.get('content-range'), `bytes */${want.length}`, name);
    await outside.arrayBuffer();

    const etag = ranged.headers.get('etag');
    const revalidated = await fetch(url(name), { headers: { 'If-None-Match': etag } });
    assert.equal(revalidated.status, 304, name);
    assert.equal((await revalidated.arrayBuffer()).byteLength, 0);
    const stale = await fetch(url(name), { headers: { Range: 'bytes=0-3', 'If-Range': '"other"' } });
    assert.equal(stale.status, 200, name);
    assert.deepEqual(Buffer.from(await stale.arrayBuffer()), want, name);

    const head = await fetch(url(name), { method: 'HEAD' });
    assert.equal(head.status, 200, name);
    assert.equal(head.headers.get('content-length'), String(want.length), name);
    assert.equal(head.headers.get('etag'), etag, name);
  }
});

test('with the default cache, segments sent from memory files (sendfile) arrive as stored, whole and ranged, many at once', async () => {
  // Default options: files of 16 KiB and more are cached in a memfd and sent
  // with sendfile, smaller ones from the heap.
  const other = await startWeb();
  try {
    const up = await uploadFile(other.url, src);
    assert.equal(up.status, 202, up.text);
    const vid = up.json.id;
    await waitForStatus(other.url, vid, 'ready');
    const names = await playerFiles(other.url, vid);
    const stored = async (name) => readFile(path.join(other.dataDir, 'content', vid, name));
    const big = [];
    for (const name of names) if ((await stored(name)).length >= 16 * 1024) big.push(name);
    assert.ok(big.some((n) => n.endsWith('.m4s')), `no segment of 16 KiB or more among ${names}`);
    for (const name of names) {
      const want = await stored(name);
      const u = `${other.url}/content/${vid}/${name}`;
      // The first fills the cache; then 32 at once share the cached copy.
      const all = await Promise.all(Array.from({ length: 33 }, () => fetch(u)
        .then(async (r) => ({ status: r.status, body: Buffer.from(await r.arrayBuffer()) }))));
      for (const r of all) {
        assert.equal(r.status, 200, name);
        assert.deepEqual(r.body, want, name);
      }
      // Ranges start inside the memory file, past its first pages too.
      const from = Math.min(want.length - 1, 5000 + (want.length >> 1));
      for (const [range, begin, end] of [[`bytes=${from}-`, from, want.length],
        ['bytes=1-4096', 1, Math.min(4097, want.length)], ['bytes=-100', Math.max(0, want.length - 100), want.length]]) {
        const r = await fetch(u, { headers: { Range: range } });
        assert.equal(r.status, 206, `${name} ${range}`);
        assert.deepEqual(Buffer.from(await r.arrayBuffer()), want.subarray(begin, end), `${name} ${range}`);
      }
    }
  } finally {
    await other.stop();
  }
});

test('a missing file is 404 with CORS, and bad names stay 400', async () => {
  for (let i = 0; i < 2; i++) {
    const res = await fetch(url('chunk-9-99999.m4s'));
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match((await res.json()).error, /no such file/);
  }
  const bad = await fetch(`${web.url}/content/${id}/%2e%2e`);
  assert.equal(bad.status, 400);
});

test('a manifest changed behind the server is served new after the revalidation TTL', async () => {
  const res = await fetch(url('manifest.mpd'));
  const before = await res.text();
  const changed = before.replace('<MPD', '<!-- changed elsewhere --><MPD');
  assert.notEqual(changed, before);
  await writeFile(path.join(web.dataDir, 'content', id, 'manifest.mpd'), changed);
  await waitFor(async () => (await (await fetch(url('manifest.mpd'))).text()) === changed,
    { timeoutMs: 30000, intervalMs: 200, what: 'the changed manifest to be served' });
});

test('deleting the video makes its cached files 404 at once', async () => {
  const { small } = await sizes();
  const segment = small.find((n) => n.endsWith('.m4s'));
  assert.equal((await fetch(url(segment)).then(async (r) => { await r.arrayBuffer(); return r; })).status, 200);
  const del = await fetch(`${web.url}/api/videos/${id}`, { method: 'DELETE' });
  assert.ok(del.status === 200 || del.status === 204, `DELETE answered ${del.status}`);
  const res = await fetch(url(segment));
  assert.equal(res.status, 404);
  await res.arrayBuffer();
});

test('the server reports the cache at shutdown, with hits', async () => {
  await web.stop();
  const line = web.log().split('\n').find((l) => l.includes('content cache:'));
  assert.ok(line, 'no cache report in the log');
  const hits = Number(/(\d+) hits/.exec(line)[1]);
  assert.ok(hits > 0, line);
});
