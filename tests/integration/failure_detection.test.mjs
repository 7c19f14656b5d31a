// Failure detection and verified reads with real processes: a web server over
// three storage nodes (R = 2) probing them every 200 ms. A killed node shows in
// `streamgrid-admin list` as suspect, then down with since when, then up once
// restarted; a replica with a flipped byte (mtime put back, as bit rot leaves
// it) is never served: whole-file reads (and, when the nodes check their own
// blocks, Range reads) get the right bytes from the other replica.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles,
  waitFor, rm, runAdmin,
} from '../lib/streamgrid.mjs';
import { flipBits } from '../lib/disk_damage.mjs';
let scratch;
let web;
const nodes = [];
let video; // { id, files: Map<name, Buffer> }

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

const cli = (...args) => runAdmin(args, { timeoutMs: 120000 });

async function listed() {
  const result = await cli('--json', 'list', web.admin);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

async function nodeInList(address) {
  const node = (await listed()).nodes.find((n) => n.address === address);
  assert.ok(node, `${address} is not listed`);
  return node;
}

/** The nodes holding `name` of the video, from their data directories. */
async function holdersOf(name) {
  const holders = [];
  for (const node of nodes) {
    const file = path.join(node.dataDir, 'data', 'content', video.id, name);
    try {
      await stat(file);
      holders.push({ node, file });
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
  }
  return holders;
}

async function fetchBytes(name, range) {
  const res = await fetch(`${web.url}/content/${video.id}/${name}`,
    range ? { headers: { Range: `bytes=${range[0]}-${range[1]}` } } : {});
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

const damageLogged = (name) => web.log().includes(`damaged copy of ${video.id}/${name}`);

before(async () => {
  scratch = await tempDir();
  for (let i = 0; i < 3; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2',
      '--node-probe-interval', '200ms', '--node-down-after', '3s',
      // Every read must reach the storage nodes, whose damaged copies are
      // the subject here: no content cache in front of them.
      '--content-cache-bytes', '0'],
  });
  const file = await makeTestVideo(path.join(scratch, 'v.mp4'),
    { width: 320, height: 180, seconds: 4 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  video = { id: res.json.id, files: new Map() };
  await waitForStatus(web.url, video.id, 'ready');
  for (const name of await playerFiles(web.url, video.id)) {
    const got = await fetchBytes(name);
    assert.equal(got.status, 200, name);
    video.files.set(name, got.body);
  }
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

test('a killed node is listed suspect, then down with since when, then up again', async () => {
  for (const node of (await listed()).nodes) {
    assert.equal(node.health, 'up', JSON.stringify(node));
    assert.ok(node.health_since_unix_ms > 0);
  }
  const victim = nodes[1];
  const killedAt = Date.now();
  await victim.kill();

  const suspect = await waitFor(async () => {
    const node = await nodeInList(victim.address);
    return node.health !== 'up' && node;
  }, { what: 'the killed node to be suspect', intervalMs: 50 });
  // --node-down-after 3s: the first look sees it suspect (a loaded machine may
  // be slower than that, and then it is down already).
  assert.ok(['suspect', 'down'].includes(suspect.health), suspect.health);
  assert.equal(suspect.reachable, false);
  assert.ok(suspect.health_since_unix_ms >= killedAt - 1000, 'since the kill');

  const down = await waitFor(async () => {
    const node = await nodeInList(victim.address);
    return node.health === 'down' && node;
  }, { what: 'the killed node to be down' });
  assert.ok(down.health_since_unix_ms >= killedAt + 2000, 'down about 3 s after the kill');
  const table = await cli('list', web.admin);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /HEALTH/);
  assert.match(table.stdout, /\n {4}down for [0-9.hms]+, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n/);
  // The others stay up.
  for (const node of (await listed()).nodes) {
    if (node.address !== victim.address) assert.equal(node.health, 'up', node.address);
  }

  await victim.restart();
  const up = await waitFor(async () => {
    const node = await nodeInList(victim.address);
    return node.health === 'up' && node;
  }, { what: 'the restarted node to be up' });
  assert.ok(up.health_since_unix_ms > down.health_since_unix_ms);
  assert.equal(up.reachable, true);
});

/**
 * Corrupts `name` on one holder, reads it with `read` (which must give the
 * right bytes every time), and if no read went to that copy (nothing was
 * logged), puts it back and corrupts the other holder instead: one of the two
 * is the replica reads go to first.
 */
async function expectRightBytesDespiteRot(name, offset, read) {
  const holders = await holdersOf(name);
  assert.equal(holders.length, 2, `copies of ${name}`);
  for (const holder of holders) {
    assert.ok(await flipBits(holder.file, offset, 0x5a), holder.file);
    for (let i = 0; i < 3; i++) await read();
    if (damageLogged(name)) return;
    // Not read from that copy: put it back (unless its node moved it away).
    await flipBits(holder.file, offset, 0x5a);
  }
  assert.fail(`no read of ${name} met the damaged copy:\n${web.log()}`);
}

test('a replica with a flipped byte is never served whole', async () => {
  const name = [...video.files.keys()].find((n) => n.endsWith('.m4s'));
  assert.ok(name, 'a segment');
  const want = video.files.get(name);
  await expectRightBytesDespiteRot(name, Math.floor(want.length / 2), async () => {
    const got = await fetchBytes(name);
    assert.equal(got.status, 200);
    assert.equal(sha(got.body), sha(want), 'whole file');
  });
  // The node holding the damaged copy is not taken for a failing one.
  for (const node of (await listed()).nodes) assert.equal(node.health, 'up', node.address);
});

test('a replica with a flipped byte is never served by Range', async () => {
  // Range reads rely on the nodes checking their own blocks.
  const names = [...video.files.keys()].filter((n) => n.endsWith('.m4s'));
  const name = names[names.length - 1];
  const want = video.files.get(name);
  const offset = Math.floor(want.length / 3);
  const range = [Math.max(0, offset - 100), Math.min(want.length - 1, offset + 100)];
  await expectRightBytesDespiteRot(name, offset, async () => {
    const got = await fetchBytes(name, range);
    assert.equal(got.status, 206);
    assert.ok(got.body.equals(want.subarray(range[0], range[1] + 1)), 'range bytes');
  });
});

test('the nodes\' quarantine counts show in streamgrid-admin list', async () => {
  // The damaged copies read above were quarantined by their nodes; the
  // monitor's next probes bring the counts.
  const total = await waitFor(async () => {
    const sum = (await listed()).nodes.reduce((n, node) => n + node.quarantined, 0);
    return sum >= 2 && sum;
  }, { what: 'quarantined copies to be listed' });
  assert.ok(total >= 2);
  const table = await cli('list', web.admin);
  assert.match(table.stdout, /QUARANTINED/);
});

test('every file still reads right, damaged copies and all', async () => {
  for (const [name, want] of video.files) {
    const got = await fetchBytes(name);
    assert.equal(got.status, 200, name);
    assert.equal(sha(got.body), sha(want), name);
  }
});
