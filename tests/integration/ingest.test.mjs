// The upload path over a cluster of three storage nodes (R=2), where the
// original is streamed to its nodes while the body arrives and committed only
// once the upload is validated: an accepted upload has two identical copies,
// and a refused or abandoned one leaves nothing on any node or in the spool.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, tempDir, run, waitFor,
} from '../lib/streamgrid.mjs';

let scratch;
let webDir;
const nodes = [];
let web;

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

// Videos accepted here: their transcodes keep adding files to the nodes in
// the background, so they are left out of the before/after comparisons.
const accepted = new Set();

/**
 * Every entry (hidden ones too) under each node's content directory, as
 * "node/video/name", except the accepted videos' own.
 */
async function everythingOnNodes() {
  const found = [];
  for (const [i, node] of nodes.entries()) {
    const root = path.join(node.dataDir, 'data', 'content');
    let videos = [];
    try {
      videos = await readdir(root);
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    for (const video of videos) {
      if (accepted.has(video)) continue;
      let names = [];
      try {
        names = await readdir(path.join(root, video));
      } catch (e) {
        if (e.code !== 'ENOTDIR' && e.code !== 'ENOENT') throw e;
        found.push(`${i}/${video}`);
      }
      for (const name of names) found.push(`${i}/${video}/${name}`);
    }
  }
  return found.sort();
}

async function spoolFiles() {
  try {
    return await readdir(path.join(webDir, 'work', 'uploads'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

before(async () => {
  scratch = await tempDir();
  webDir = path.join(scratch, 'web');
  for (let i = 0; i < 3; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({
    dataDir: webDir,
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2'],
  });
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
});

test('an accepted upload is on two nodes, the same bytes as sent', async () => {
  const file = await makeTestVideo(path.join(scratch, 'whole.mp4'),
    { width: 640, height: 360, seconds: 4 });
  const sent = sha(await readFile(file));
  const res = await uploadFile(web.url, file, { timeoutMs: 120000 });
  assert.equal(res.status, 202, res.text);
  accepted.add(res.json.id);
  const holders = [];
  for (const node of nodes) {
    try {
      const bytes = await readFile(path.join(node.dataDir, 'data', 'content', res.json.id, 'original'));
      holders.push(sha(bytes));
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
  }
  assert.deepEqual(holders, [sent, sent]);
});

test('a large upload (past the 8 MiB a node writes through the page cache) is whole on two nodes', async () => {
  // Lossless noise: about 0.4 MB a frame, well past the 8 MiB a node writes
  // through the page cache before it bypasses it.
  const file = await makeTestVideo(path.join(scratch, 'large.mkv'), {
    width: 640, height: 360, seconds: 2, rate: 25, audio: false,
    extra: ['-vf', 'noise=alls=60:allf=t', '-qp', '0'],
  });
  const bytes = await readFile(file);
  assert.ok(bytes.length > 12 * 1024 * 1024, `test video has only ${bytes.length} bytes`);
  const sent = sha(bytes);
  const res = await uploadFile(web.url, file, { timeoutMs: 240000 });
  assert.equal(res.status, 202, res.text);
  accepted.add(res.json.id);
  const holders = [];
  for (const node of nodes) {
    try {
      holders.push(sha(await readFile(path.join(node.dataDir, 'data', 'content', res.json.id, 'original'))));
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
  }
  assert.deepEqual(holders, [sent, sent]);
});

test('a refused upload leaves nothing on any node, though its bytes were streamed', async () => {
  // Index first, data cut: only the end check finds it, after every byte
  // has gone to the nodes.
  const whole = await makeTestVideo(path.join(scratch, 'cut-src.mp4'),
    { width: 640, height: 360, seconds: 4 });
  const faststart = path.join(scratch, 'faststart.mp4');
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', '-i', whole, '-c', 'copy',
    '-movflags', '+faststart', faststart]);
  const bytes = await readFile(faststart);
  const cut = path.join(scratch, 'cut.mp4');
  await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.75)));

  const before = await everythingOnNodes();
  const res = await uploadFile(web.url, cut, { timeoutMs: 120000 });
  assert.equal(res.status, 422, res.text);
  assert.match(res.json.error, /incomplete/);
  await waitFor(async () => JSON.stringify(await everythingOnNodes()) === JSON.stringify(before),
    { timeoutMs: 30000, what: 'the streamed copies to be abandoned' });
  await waitFor(async () => (await spoolFiles()).length === 0,
    { timeoutMs: 30000, what: 'the spool file to be removed' });
});

test('an upload whose client goes away midway leaves nothing', async () => {
  const file = await makeTestVideo(path.join(scratch, 'abandoned.mp4'),
    { width: 640, height: 360, seconds: 4 });
  const bytes = await readFile(file);
  const before = await everythingOnNodes();
  const boundary = 'streamgrid-ingest-test';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; `
    + `filename="abandoned.mp4"\r\nContent-Type: video/mp4\r\n\r\n`);
  const controller = new AbortController();
  let sentHalf;
  const halfSent = new Promise((resolve) => { sentHalf = resolve; });
  const body = new ReadableStream({
    async pull(c) {
      if (!this.step) {
        this.step = 1;
        c.enqueue(head);
        c.enqueue(bytes.subarray(0, Math.floor(bytes.length / 2)));
        return;
      }
      // Never sends the rest: the client is aborted once the server has it.
      sentHalf();
      await new Promise(() => {});
    },
  });
  const upload = fetch(`${web.url}/upload`, {
    method: 'POST', body, duplex: 'half', signal: controller.signal,
    headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, Accept: 'application/json' },
  }).catch((e) => e);
  await halfSent;
  await waitFor(async () => (await spoolFiles()).length === 1,
    { timeoutMs: 30000, what: 'the upload to be spooled' });
  controller.abort();
  await upload;
  await waitFor(async () => (await spoolFiles()).length === 0,
    { timeoutMs: 60000, what: 'the spool file to be removed' });
  await waitFor(async () => JSON.stringify(await everythingOnNodes()) === JSON.stringify(before),
    { timeoutMs: 60000, what: 'the streamed copies to be abandoned' });
  // And the server still takes uploads.
  const res = await uploadFile(web.url, file, { timeoutMs: 120000 });
  assert.equal(res.status, 202, res.text);
});
