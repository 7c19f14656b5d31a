// Damage found by the storage nodes' scrubbers is repaired promptly: three
// real nodes scrubbing every second, two replicas of every file, and a web
// server whose anti-entropy pass is an hour away, so only the quarantine path
// (the repair loop following each node's ListQuarantined) can explain a copy
// coming back within the test. On one node, copies get a flipped bit (mtime
// put back), a truncation, zero length and a deleted data file; the node
// quarantines each (streamgrid-admin list shows them), and each comes back
// with the other replica's bytes. Meanwhile every file read through HTTP,
// whole and by Range, has the right bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, waitFor,
  playerFiles, runAdmin,
} from '../lib/streamgrid.mjs';
import { flipBits, truncateKeepingMtime } from '../lib/disk_damage.mjs';

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

let scratch;
const nodes = [];
let web;
let video;
const served = new Map(); // name → bytes served over HTTP before any damage
const expected = new Map(); // name → sha256 of the stored file (all replicas agree)

const cli = (...args) => runAdmin(args, { timeoutMs: 120000 });

const dataFile = (node, name) => path.join(node.dataDir, 'data', 'content', video.id, name);

/** name → sha256 of each of the video's files in `node`'s data directory. */
async function filesOn(node) {
  const files = new Map();
  let names = [];
  try {
    names = (await readdir(path.join(node.dataDir, 'data', 'content', video.id)))
      .filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (e.code === 'ENOENT') return files;
    throw e;
  }
  for (const name of names) {
    try {
      files.set(name, sha(await readFile(dataFile(node, name))));
    } catch (e) {
      if (e.code !== 'ENOENT') throw e; // quarantined while we looked
    }
  }
  return files;
}

/**
 * Puts `file`'s mtime back to `ns` (to the nanosecond, which fs.utimes
 * cannot). The node may have found the damage and quarantined the file
 * already (a read got there first): then there is nothing to put back, and
 * nothing may be created in its place (`touch -c`).
 */
async function fetchBytes(name, range) {
  const res = await fetch(`${web.url}/content/${video.id}/${name}`,
    range ? { headers: { Range: `bytes=${range[0]}-${range[1]}` } } : {});
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

/**
 * Reads every served file whole and by a Range until stop() is called;
 * stop() resolves to { reads, wrong } (wrong: descriptions of bad answers).
 */
function keepReading() {
  let stopping = false;
  const result = { reads: 0, wrong: [] };
  const loop = (async () => {
    let round = 0;
    while (!stopping) {
      for (const [name, want] of served) {
        if (stopping) break;
        const whole = await fetchBytes(name);
        result.reads++;
        if (whole.status !== 200 || !whole.body.equals(want)) {
          result.wrong.push(`${name}: status ${whole.status}, ${whole.body.length} bytes`);
        }
        if (want.length < 2) continue;
        const from = (round * 7919) % (want.length - 1);
        const to = Math.min(want.length - 1, from + 1 + ((round * 104729) % 300000));
        const part = await fetchBytes(name, [from, to]);
        result.reads++;
        if (part.status !== 206 || !part.body.equals(want.subarray(from, to + 1))) {
          result.wrong.push(`${name} bytes ${from}-${to}: status ${part.status}, ${part.body.length} bytes`);
        }
      }
      round++;
    }
  })();
  return async () => {
    stopping = true;
    await loop;
    return result;
  };
}

before(async () => {
  scratch = await tempDir('streamgrid-scrub-repair-');
  for (let i = 0; i < 3; i++) {
    nodes.push(await startStorage({
      dataDir: path.join(scratch, `node${i}`),
      args: ['--scrub-interval', '1s', '--scrub-bytes-per-second', String(200 * 1024 * 1024)],
    }));
  }
  web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2', '--anti-entropy-interval', '1h', '--repair-after', '1h',
      '--node-probe-interval', '200ms'],
  });
  const file = await makeTestVideo(path.join(scratch, 'v.mp4'),
    { width: 320, height: 180, seconds: 8 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  video = { id: res.json.id };
  await waitForStatus(web.url, video.id, 'ready');
  for (const name of await playerFiles(web.url, video.id)) {
    const got = await fetchBytes(name);
    assert.equal(got.status, 200, name);
    served.set(name, got.body);
  }
  for (const node of nodes) {
    for (const [name, digest] of await filesOn(node)) {
      assert.ok(!expected.has(name) || expected.get(name) === digest, `replicas of ${name} differ`);
      expected.set(name, digest);
    }
  }
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

test('copies damaged on disk are found by the scrubber and restored from the other replica', async () => {
  // The node with the most files; damage four of them, served ones first.
  const holdings = [];
  for (const node of nodes) holdings.push(await filesOn(node));
  const victim = holdings.reduce((best, files, i) => (files.size > holdings[best].size ? i : best), 0);
  const node = nodes[victim];
  const candidates = [...holdings[victim].keys()]
    .sort((a, b) => Number(served.has(b)) - Number(served.has(a)) || a.localeCompare(b));
  const sizes = new Map();
  for (const name of candidates) sizes.set(name, (await stat(dataFile(node, name))).size);
  const damage = candidates.filter((name) => sizes.get(name) >= 16).slice(0, 4);
  assert.equal(damage.length, 4, `files on node ${victim}: ${candidates}`);
  const quarantinedBefore = await quarantinedOn(node);

  // Keys the web server's repair loop read in a quarantine log; noted while
  // waiting, as its log output is kept only so far back.
  const followed = new Set();
  const noteFollowed = () => {
    for (const name of damage) {
      if (web.log().includes(`${video.id}/${name} quarantined on node`)) followed.add(name);
    }
  };
  const stopReading = keepReading();
  try {
    await flipBits(dataFile(node, damage[0]), Math.floor(sizes.get(damage[0]) / 2));
    await truncateKeepingMtime(dataFile(node, damage[1]), Math.floor(sizes.get(damage[1]) / 2));
    await truncateKeepingMtime(dataFile(node, damage[2]), 0);
    await unlink(dataFile(node, damage[3]));

    // The node finds each (its scrubber every second; a read may be first).
    await waitFor(async () => (await quarantinedOn(node)) >= quarantinedBefore + 4,
      { timeoutMs: 120000, intervalMs: 500, what: `node ${victim} to quarantine 4 copies` })
      .catch((e) => { throw new Error(`${e.message}\n${node.log().slice(-4000)}`); });

    // And each copy is good again on that node, long before anti-entropy.
    let bad = [];
    await waitFor(async () => {
      noteFollowed();
      const now = await filesOn(node);
      bad = damage.filter((name) => now.get(name) !== expected.get(name));
      return bad.length === 0;
    }, { timeoutMs: 120000, intervalMs: 500, what: 'the damaged copies to be restored' })
      .catch((e) => { throw new Error(`${e.message}; still bad: ${bad}\n${web.log().slice(-4000)}`); });
  } finally {
    const { reads, wrong } = await stopReading();
    assert.deepEqual(wrong, [], 'every HTTP read had the right bytes');
    assert.ok(reads > 0, 'files were read during the damage and the repair');
  }

  // The quarantine path repaired them: the web server followed the node's log.
  await waitFor(() => {
    noteFollowed();
    return followed.size === damage.length;
  }, { timeoutMs: 10000, what: 'the repair loop to have logged each key from the quarantine log' })
    .catch((e) => { throw new Error(`${e.message}: ${[...followed]}\n${web.log().slice(-4000)}`); });
  // Every file still has its two good copies, and nothing else changed.
  for (const [name, digest] of expected) {
    let copies = 0;
    for (const n of nodes) if ((await filesOn(n)).get(name) === digest) copies++;
    assert.equal(copies, 2, `good copies of ${name}`);
  }
  const status = await cli('--json', 'status', web.admin);
  assert.equal(status.code, 0, status.stderr);
  const repair = JSON.parse(status.stdout).repair ?? {};
  assert.ok(Number(repair.anti_entropy_passes ?? 0) === 0, `no anti-entropy pass: ${status.stdout}`);
});

/** The node's quarantined count in `streamgrid-admin --json list` (0 until known). */
async function quarantinedOn(node) {
  const listed = await cli('--json', 'list', web.admin);
  assert.equal(listed.code, 0, listed.stderr);
  const json = JSON.parse(listed.stdout);
  const entry = (json.nodes ?? json).find((n) => n.address === node.address);
  assert.ok(entry, `node ${node.address} listed: ${listed.stdout}`);
  return Number(entry.quarantined ?? 0);
}

// Block checksums (docs/integrity.md): every copy written through the web
// server, and every copy the repair restored (a pull keeps its source's
// algorithm), is recorded with XXH3-128 blocks (one per MiB, a one-block
// file too) beside the whole file's SHA-256, which is the data's.
test('every copy, restored ones included, has XXH3-128 block checksums and its SHA-256', async () => {
  let records = 0;
  for (const node of nodes) {
    for (const [name, digest] of await filesOn(node)) {
      const record = (await readFile(
        path.join(node.dataDir, 'data', 'checksums', video.id, name), 'utf8')).trim().split(' ');
      // v3 <sha256> <mtime_ns> <etag> <size> xxh3-128 <block count> <digests>
      assert.equal(record.length, 8, `record of ${name}: ${record.join(' ')}`);
      assert.equal(record[0], 'v3', name);
      assert.equal(record[1], digest, `whole-file SHA-256 of ${name}`);
      assert.equal(record[5], 'xxh3-128', name);
      const size = Number(record[4]);
      const blocks = Math.ceil(size / (1 << 20));
      assert.equal(Number(record[6]), blocks, `blocks of ${name} (${size} bytes)`);
      assert.equal(record[7], blocks === 0 ? '-' : record[7], name);
      if (blocks > 0) assert.match(record[7], new RegExp(`^[0-9a-f]{${32 * blocks}}$`), name);
      records++;
    }
  }
  assert.equal(records, 2 * expected.size, 'two recorded copies of every file');
});
