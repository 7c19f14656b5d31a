// A migration that meets copies damaged on a source node's disk. Two real
// storage nodes hold every file (R = 2); one of them has a bit flipped in each
// of its copies (mtime put back, as bit rot leaves it: only reading the bytes
// shows it). A third node is added without a bandwidth limit, so the copies
// are pulled node to node, and a pull's source sends its stored bytes without
// hashing them (the destination checks each block against the digests the
// source has stored). The migration must still complete, the new node must
// hold only intact bytes, every damaged copy a pull met must be out of service
// on its node, and every file must read back whole over HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir,
  playerFiles, runAdmin,
} from '../lib/streamgrid.mjs';
import { flipBits } from '../lib/disk_damage.mjs';

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

let scratch;
const nodes = [];
let web;
let video;
const expected = new Map(); // name → sha256 of the stored file

const cli = (...args) => runAdmin(args);

const dataFile = (node, name) => path.join(node.dataDir, 'data', 'content', video.id, name);

/** Names of the video's files in `node`'s data directory. */
async function namesOn(node) {
  try {
    return (await readdir(path.join(node.dataDir, 'data', 'content', video.id)))
      .filter((n) => !n.startsWith('.') && !n.includes('.tmp'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

before(async () => {
  scratch = await tempDir();
  for (let i = 0; i < 2; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2'],
  });
  const file = await makeTestVideo(path.join(scratch, 'v.mp4'), { width: 320, height: 180, seconds: 4 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  video = { id: res.json.id };
  await waitForStatus(web.url, video.id, 'ready');
  // Every file is on both nodes; node 1's copies are the intact reference.
  for (const name of await namesOn(nodes[1])) {
    expected.set(name, sha(await readFile(dataFile(nodes[1], name))));
  }
  assert.ok(expected.size > 3, `${expected.size} files stored`);
  assert.deepEqual((await namesOn(nodes[0])).sort(), [...expected.keys()].sort());
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
});

test('a migration pulling from a node with damaged copies stores only intact ones and takes the damaged out of service', async (t) => {
  for (const name of expected.keys()) {
    const { size } = await stat(dataFile(nodes[0], name));
    if (size > 0) await flipBits(dataFile(nodes[0], name), Math.floor(size / 2));
  }
  nodes.push(await startStorage({ dataDir: path.join(scratch, 'node2') }));
  const added = await cli('add', web.admin, nodes[2].address);
  assert.equal(added.code, 0, added.stderr + added.stdout);

  // The new node holds its share, every byte intact.
  const moved = await namesOn(nodes[2]);
  assert.ok(moved.length > 0, 'the new node got files');
  for (const name of moved) {
    assert.equal(sha(await readFile(dataFile(nodes[2], name))), expected.get(name), name);
  }

  // Each damaged copy a pull met (the new node logs the source and the file)
  // was quarantined by its node: it is gone from node 0, or back intact
  // (restored by repair from node 1).
  const met = new Set();
  for (const m of nodes[2].log().matchAll(/sent [0-9a-z]+\/(\S+) with block \d+ not matching its stored digest: its copy is damaged/g)) {
    met.add(m[1]);
  }
  for (const name of met) {
    let now = null;
    try {
      now = sha(await readFile(dataFile(nodes[0], name)));
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    assert.ok(now === null || now === expected.get(name), `${name} is still damaged on node 0`);
  }
  t.diagnostic(`damaged source copies met by pulls: ${met.size} of ${moved.length} moved`);

  // Every file reads back whole over HTTP (reads verify, whichever node serves).
  for (const name of await playerFiles(web.url, video.id)) {
    const res = await fetch(`${web.url}/content/${video.id}/${name}`);
    assert.equal(res.status, 200, name);
    const body = Buffer.from(await res.arrayBuffer());
    if (expected.has(name)) assert.equal(sha(body), expected.get(name), name);
  }
});
