// Self-repair of a storage cluster of four real nodes with two replicas of
// every file, under one web server with short repair intervals: a copy
// deleted on disk comes back (anti-entropy), a node restarted on an emptied
// disk is refilled with no command, a node down longer than --repair-after is
// taken out and its files re-replicated from the survivors, and when it comes
// back it is put back in and the interim copies are removed; an operator can
// remove a dead node and add one while another is down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, waitFor, runAdmin,
} from '../lib/streamgrid.mjs';

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

let scratch;
const nodes = [];
let web;
const expected = new Map(); // "id/name" → sha256 of the stored file

/** Runs streamgrid-admin; resolves to { code, stdout, stderr }. */
const cli = (...args) => runAdmin(args);

function contentDir(node) {
  return path.join(node.dataDir, 'data', 'content');
}

/** "id/name" → sha256 of every file in `node`'s data directory. */
async function filesOn(node) {
  const files = new Map();
  let ids = [];
  try {
    ids = (await readdir(contentDir(node))).filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (e.code === 'ENOENT') return files;
    throw e;
  }
  for (const id of ids) {
    let names = [];
    try {
      names = (await readdir(path.join(contentDir(node), id))).filter((n) => !n.startsWith('.'));
    } catch (e) {
      if (e.code === 'ENOENT') continue;
      throw e;
    }
    for (const name of names) {
      try {
        files.set(`${id}/${name}`, sha(await readFile(path.join(contentDir(node), id, name))));
      } catch (e) {
        if (e.code !== 'ENOENT') throw e; // deleted while we looked
      }
    }
  }
  return files;
}

/** key → indices of the nodes in `which` holding a good copy of it. */
async function goodCopies(which = nodes.map((_, i) => i)) {
  const copies = new Map([...expected.keys()].map((k) => [k, []]));
  for (const i of which) {
    for (const [key, digest] of await filesOn(nodes[i])) {
      if (expected.get(key) === digest) copies.get(key).push(i);
    }
  }
  return copies;
}

/** The keys with fewer than `r` good copies on the nodes in `which` (empty when all have). */
async function underReplicated(which, r = 2) {
  const short = [];
  for (const [key, holders] of await goodCopies(which)) {
    if (holders.length < r) short.push(`${key}: ${holders.length}`);
  }
  return short;
}

async function waitReplicated(which, what, timeoutMs = 180000) {
  let last = [];
  await waitFor(async () => {
    last = await underReplicated(which);
    return last.length === 0;
  }, { timeoutMs, intervalMs: 500, what: `${what} (short: ${last.slice(0, 5).join(', ')})` })
    .catch((e) => { throw new Error(`${e.message}; still short: ${last.slice(0, 5).join(', ')}\n${web.log().slice(-4000)}`); });
}

async function listNodes() {
  const listed = await cli('--json', 'list', web.admin);
  assert.equal(listed.code, 0, listed.stderr);
  const json = JSON.parse(listed.stdout);
  return json.nodes ?? json;
}

async function migrationOver() {
  const status = JSON.parse((await cli('--json', 'status', web.admin)).stdout);
  const m = status.migration;
  return !m || m.state === 'done' || m.state === 'failed' ? m ?? {} : null;
}

before(async () => {
  scratch = await tempDir('streamgrid-repair-');
  for (let i = 0; i < 4; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2', '--repair-after', '3s', '--anti-entropy-interval', '5s'],
  });
  const file = await makeTestVideo(path.join(scratch, 'v.mp4'), { width: 320, height: 180, seconds: 4 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  await waitForStatus(web.url, res.json.id, 'ready');
  for (const node of nodes) {
    for (const [key, digest] of await filesOn(node)) expected.set(key, digest);
  }
  assert.ok(expected.size > 5, `stored files: ${[...expected.keys()]}`);
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
});

test('every file starts with two good copies', async () => {
  assert.deepEqual(await underReplicated([0, 1, 2, 3]), []);
});

test('a copy deleted on disk is restored by anti-entropy', async () => {
  const copies = await goodCopies();
  const [key, holders] = [...copies].find(([, h]) => h.length === 2);
  const victim = nodes[holders[0]];
  await rm(path.join(contentDir(victim), key), { force: true });
  assert.equal((await goodCopies()).get(key).length, 1);
  await waitReplicated([0, 1, 2, 3], `${key} restored`, 120000);
});

test('a node restarted on an emptied disk is refilled with no command', async () => {
  const node = nodes[1];
  const before = (await filesOn(node)).size;
  assert.ok(before > 0);
  await node.stop();
  await rm(path.join(node.dataDir, 'data'), { recursive: true, force: true });
  await node.restart();
  assert.equal((await filesOn(node)).size, 0);
  await waitReplicated([0, 1, 2, 3], 'the emptied node refilled');
  assert.equal((await filesOn(node)).size, before);
});

test('a node down longer than --repair-after is taken out, re-replicated, then put back', async () => {
  const node = nodes[2];
  await node.kill();
  const live = [0, 1, 3];
  // Its files get their two copies on the others, from the surviving replicas.
  await waitReplicated(live, 're-replication of the killed node', 240000);
  // Anti-entropy may have restored the copies before the take-out's own
  // migration flipped: wait for that too.
  let out;
  await waitFor(async () => {
    out = (await listNodes()).find((n) => n.address === node.address);
    return out?.state === 'out';
  }, { timeoutMs: 240000, intervalMs: 500, what: 'the killed node taken out' });
  assert.ok(out, 'the out node is listed');
  assert.equal(out.state, 'out', JSON.stringify(out));
  const onOthers = async () => {
    let count = 0;
    for (const i of live) count += (await filesOn(nodes[i])).size;
    return count;
  };
  const interim = await onOthers();

  // Back: put back in automatically; the interim copies go again.
  await node.restart();
  await waitFor(async () => {
    const listed = (await listNodes()).find((n) => n.address === node.address);
    const over = await migrationOver();
    return listed && listed.state === 'active' && over && over.state === 'done';
  }, { timeoutMs: 240000, intervalMs: 500, what: 'the node put back' });
  await waitReplicated([0, 1, 2, 3], 'every file on two nodes after the put-back');
  assert.ok(await onOthers() < interim, 'interim copies removed');
});

test('an operator removes a dead node, and adds one while another is down', async () => {
  // Remove node 3 while it is dead: its files come from the surviving replicas.
  await nodes[3].kill();
  const removed = await cli('remove', web.admin, nodes[3].address);
  assert.equal(removed.code, 0, removed.stderr + removed.stdout);
  await waitReplicated([0, 1, 2], 'files of the removed dead node');

  // Add a fresh node while node 0 is dead.
  nodes.push(await startStorage({ dataDir: path.join(scratch, 'node4') }));
  await nodes[0].kill();
  const added = await cli('add', web.admin, nodes[4].address);
  assert.equal(added.code, 0, added.stderr + added.stdout);
  assert.ok((await filesOn(nodes[4])).size > 0, 'the new node got its share');
  // With node 0 still dead, every file has a copy on the live nodes, and
  // node 0's share is re-replicated once it counts as down for long enough.
  await waitReplicated([1, 2, 4], 'every file on two live nodes with node 0 dead', 240000);
});
