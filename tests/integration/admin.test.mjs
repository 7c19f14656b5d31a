// Live membership changes through streamgrid-admin: a web server over real
// storage nodes (R = 2), nodes added and removed while a reader keeps fetching
// every file, the CLI's output and refusals, and a migration that survives a
// restart of the web server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles,
  waitFor, runAdmin,
} from '../lib/streamgrid.mjs';

let scratch;
let webDir;
let web;
const nodes = []; // every node ever started, by index
const videos = []; // { id, files: Map<name, sha256> }

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

/** Runs streamgrid-admin; resolves to { code, stdout, stderr } whatever the exit code. */
const cli = (...args) => runAdmin(args);

function webArgs() {
  return ['--content', `cluster:${nodes.slice(0, 3).map((n) => n.address).join(',')}`,
    '--replication-factor', '2',
    // Slow enough that the reader overlaps the copying.
    '--migration-bytes-per-second', '400000'];
}

/** Every stored key ("video/name") on `node`, from its data directory. */
async function keysOn(node) {
  const keys = [];
  let ids = [];
  try {
    ids = (await readdir(path.join(node.dataDir, 'data', 'content'))).filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  for (const id of ids) {
    for (const name of await readdir(path.join(node.dataDir, 'data', 'content', id))) {
      if (!name.startsWith('.')) keys.push(`${id}/${name}`);
    }
  }
  return keys;
}

/** Checks every key is on exactly two of `members` and on no other node; returns key counts per node. */
async function expectTwoCopiesOn(members) {
  const holders = new Map();
  const perNode = new Map();
  for (const node of nodes) {
    const keys = await keysOn(node);
    perNode.set(node, keys.length);
    if (!members.includes(node)) {
      assert.deepEqual(keys, [], `${node.address} is not a member but holds files`);
    }
    for (const key of keys) holders.set(key, (holders.get(key) || 0) + 1);
  }
  assert.ok(holders.size > 0);
  for (const [key, count] of holders) assert.equal(count, 2, `copies of ${key}`);
  for (const video of videos) {
    for (const name of video.files.keys()) assert.ok(holders.has(`${video.id}/${name}`), name);
  }
  return perNode;
}

/**
 * Fetches every file of every video over and over until stop() is called;
 * stop() resolves to { reads, failures }.
 */
function startReader() {
  let running = true;
  let reads = 0;
  const failures = [];
  const loop = (async () => {
    while (running) {
      for (const video of videos) {
        for (const [name, digest] of video.files) {
          try {
            const res = await fetch(`${web.url}/content/${video.id}/${name}`);
            const body = Buffer.from(await res.arrayBuffer());
            if (res.status !== 200 || sha(body) !== digest) {
              failures.push(`${video.id}/${name}: ${res.status}`);
            }
          } catch (e) {
            failures.push(`${video.id}/${name}: ${e.message}`);
          }
          reads++;
        }
      }
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { reads, failures };
  };
}

/** The number in the CLI's "N files copied" line. */
function filesCopied(stdout) {
  const match = stdout.match(/(\d+) files copied/);
  assert.ok(match, `no files-copied count in: ${stdout}`);
  return Number(match[1]);
}

before(async () => {
  scratch = await tempDir();
  webDir = path.join(scratch, 'web');
  for (let i = 0; i < 3; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({ dataDir: webDir, args: webArgs() });
  for (let i = 0; i < 2; i++) {
    const file = await makeTestVideo(path.join(scratch, `v${i}.mp4`),
      { width: 320, height: 180, seconds: 4 });
    const res = await uploadFile(web.url, file);
    assert.equal(res.status, 202, res.text);
    videos.push({ id: res.json.id, files: new Map() });
  }
  for (const video of videos) {
    await waitForStatus(web.url, video.id, 'ready');
    const base = `${web.url}/content/${video.id}/`;
    const names = await playerFiles(web.url, video.id);
    for (const name of names) {
      const res = await fetch(base + name);
      assert.equal(res.status, 200, name);
      video.files.set(name, sha(Buffer.from(await res.arrayBuffer())));
    }
  }
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
});

test('list shows every node with its share of the keyspace', async () => {
  const text = await cli('list', web.admin);
  assert.equal(text.code, 0, text.stderr);
  for (const node of nodes) assert.match(text.stdout, new RegExp(node.address.replace('.', '\\.')));
  assert.match(text.stdout, /replication factor 2, placement version 1/);

  const json = await cli('--json', 'list', web.admin);
  assert.equal(json.code, 0, json.stderr);
  const listed = JSON.parse(json.stdout);
  assert.equal(listed.replication_factor, 2);
  assert.equal(listed.nodes.length, 3);
  for (const node of listed.nodes) {
    assert.equal(node.state, 'active');
    assert.equal(node.reachable, true);
    assert.ok(node.files > 0);
    assert.ok(Math.abs(node.share_of_keyspace - 1 / 3) < 0.01, `share ${node.share_of_keyspace}`);
  }
});

test('bad changes are refused with a reason', async () => {
  const twice = await cli('add', web.admin, nodes[0].address);
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /ALREADY_EXISTS: .*already a member/);

  const unreachable = await cli('add', web.admin, '127.0.0.1:1');
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /does not answer/);

  const unknown = await cli('remove', web.admin, '127.0.0.1:2');
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /NOT_FOUND: no node 127\.0\.0\.1:2/);

  const usage = await cli('add', web.admin);
  assert.equal(usage.code, 2);
  // Nothing changed.
  const status = JSON.parse((await cli('--json', 'status', web.admin)).stdout);
  assert.equal(status.migration, null);
  assert.equal(status.placement_version, 1);
});

test('adding a node moves its share without a failed read', async () => {
  nodes.push(await startStorage({ dataDir: path.join(scratch, 'node3') }));
  const stop = startReader();
  const added = await cli('add', web.admin, nodes[3].address);
  const { reads, failures } = await stop();
  assert.equal(added.code, 0, added.stderr);
  assert.deepEqual(failures, []);
  assert.ok(reads > 0);
  assert.match(added.stdout, new RegExp(`added node ${nodes[3].address.replace('.', '\\.')}`));
  const perNode = await expectTwoCopiesOn(nodes.slice(0, 4));
  const onNew = perNode.get(nodes[3]);
  assert.ok(onNew > 0);
  // Every file the new node holds was copied there by the migration, once.
  assert.equal(filesCopied(added.stdout), onNew);

  const listed = JSON.parse((await cli('--json', 'list', web.admin)).stdout);
  assert.equal(listed.nodes.length, 4);
  assert.equal(listed.placement_version, 2);
  for (const node of listed.nodes) {
    assert.equal(node.state, 'active');
    assert.ok(Math.abs(node.share_of_keyspace - 1 / 4) < 0.01, `share ${node.share_of_keyspace}`);
  }
});

test('removing a node moves its files to the others without a failed read', async () => {
  const before = (await keysOn(nodes[0])).length;
  assert.ok(before > 0);
  const stop = startReader();
  const removed = await cli('--json', 'remove', web.admin, nodes[0].address);
  const { reads, failures } = await stop();
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(failures, []);
  assert.ok(reads > 0);
  const migration = JSON.parse(removed.stdout);
  assert.equal(migration.state, 'done');
  assert.equal(migration.files_copied, before);
  assert.equal(migration.files_deleted, before);
  await expectTwoCopiesOn(nodes.slice(1, 4));
});

test('a migration resumes after the web server restarts', async () => {
  // Start removing node 1 without waiting, and restart the web server while
  // it copies (slowly, under a tight bandwidth limit).
  await web.stop();
  web = await startWeb({ dataDir: webDir,
    args: [...webArgs().slice(0, -1), '20000'] });
  const started = await cli('remove', web.admin, nodes[1].address, '--no-wait');
  assert.equal(started.code, 0, started.stderr);
  assert.match(started.stdout, /migration started: remove node/);
  const midway = await waitFor(async () => {
    const s = JSON.parse((await cli('--json', 'status', web.admin)).stdout);
    return s.migration.partitions_done > 0 || s.migration.state !== 'copying' ? s : null;
  }, { timeoutMs: 60000, what: 'some partitions to be copied' });
  await web.stop();
  // Stopped half-way: the restart has something to resume.
  assert.equal(midway.migration.state, 'copying');
  assert.ok(midway.migration.partitions_done < midway.migration.partitions_total);
  web = await startWeb({ dataDir: webDir, args: webArgs() });
  const status = await waitFor(async () => {
    const s = JSON.parse((await cli('--json', 'status', web.admin)).stdout);
    return s.migration.state === 'done' ? s : null;
  }, { timeoutMs: 120000, what: 'the migration to finish after the restart' });
  assert.equal(status.nodes, 2);
  assert.match((await cli('status', web.admin)).stdout, /done/);
  await expectTwoCopiesOn(nodes.slice(2, 4));
  for (const video of videos) {
    for (const [name, digest] of video.files) {
      const res = await fetch(`${web.url}/content/${video.id}/${name}`);
      assert.equal(sha(Buffer.from(await res.arrayBuffer())), digest, name);
    }
  }
});

test('removing a node is refused when fewer than R nodes would remain', async () => {
  const refused = await cli('remove', web.admin, nodes[2].address);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /FAILED_PRECONDITION: .*fewer than the 2 replicas/);
});
