// Hinted handoff with real processes: four storage nodes, two copies of every
// file. With a node killed, uploads still become ready (stand-ins take the
// dead node's copies and record hints for it); when it comes back, the copies
// are handed back to it and dropped from the stand-ins. A node killed in the
// middle of a large write ends with the upload stored on two live nodes, and
// handed back once both nodes are back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, run, waitFor,
} from '../lib/streamgrid.mjs';

let scratch;
const nodes = [];
let web;

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

async function shaOfFile(file) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest('hex');
}

async function listDir(dir) {
  try {
    return await readdir(dir);
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

const contentDir = (node) => path.join(node.dataDir, 'data', 'content');

/** The names of `id`'s files on `node`, read from its data directory. */
async function filesOn(node, id) {
  return (await listDir(path.join(contentDir(node), id))).filter((n) => !n.startsWith('.'));
}

/** The hints `node` holds, read from its hint records: { intended, videoId, name, sha256 }. */
async function hintsOn(node) {
  const dir = path.join(node.dataDir, 'data', 'hints');
  const hints = [];
  for (const file of await listDir(dir)) {
    if (file.startsWith('.')) continue;
    const lines = (await readFile(path.join(dir, file), 'utf8')).split('\n');
    assert.equal(lines[0], 'streamgrid-hint 1');
    hints.push({ intended: lines[2], videoId: lines[3], name: lines[4], sha256: lines[6] });
  }
  return hints;
}

/** Map name -> number of nodes (of `among`) holding `id`'s file. */
async function holders(id, among = nodes) {
  const count = new Map();
  for (const node of among) {
    for (const name of await filesOn(node, id)) count.set(name, (count.get(name) || 0) + 1);
  }
  return count;
}

before(async () => {
  scratch = await tempDir();
  for (let i = 0; i < 4; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
      '--replication-factor', '2', '--handoff-interval', '300ms'],
  });
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
});

let hinted = [];  // hints for nodes[3] while it was down
let video;

test('with a node killed, uploads become ready with two copies of every file', async () => {
  await nodes[3].kill();
  const file = await makeTestVideo(path.join(scratch, 'v.mp4'), { width: 320, height: 180, seconds: 4 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  video = res.json.id;
  await waitForStatus(web.url, video, 'ready');
  const count = await holders(video, nodes.slice(0, 3));
  assert.ok(count.has('original'));
  assert.ok(count.size > 5, `files: ${[...count.keys()]}`);
  for (const [name, n] of count) assert.equal(n, 2, `${video}/${name} copies on live nodes`);

  // The copies meant for the dead node sit on stand-ins, each with a hint naming it.
  for (const node of nodes.slice(0, 3)) {
    for (const hint of await hintsOn(node)) {
      assert.equal(hint.intended, nodes[3].address);
      assert.equal(hint.videoId, video);
      assert.ok((await filesOn(node, video)).includes(hint.name));
      hinted.push(hint);
    }
  }
  assert.ok(hinted.length > 0, 'some files are owned by the dead node');
  // Everything is served meanwhile, with the right bytes.
  const original = await fetch(`${web.url}/content/${video}/original`);
  assert.equal(original.status, 200);
  assert.equal(sha(Buffer.from(await original.arrayBuffer())), await shaOfFile(file));
});

test('when the node is back, hinted copies are handed back and leave the stand-ins', async () => {
  await nodes[3].restart();
  await waitFor(async () => {
    for (const node of nodes.slice(0, 3)) {
      if ((await hintsOn(node)).length > 0) return false;
    }
    return true;
  }, { timeoutMs: 60000, intervalMs: 200, what: 'every hint to be handed back' });
  // The returning node holds exactly the files hinted for it, with the
  // recorded SHA-256.
  const onOwner = new Set(await filesOn(nodes[3], video));
  assert.deepEqual([...onOwner].sort(), hinted.map((h) => h.name).sort());
  for (const hint of hinted) {
    const digest = await shaOfFile(path.join(contentDir(nodes[3]), video, hint.name));
    assert.equal(digest, hint.sha256, hint.name);
  }
  // Two copies of everything again, none left over on stand-ins.
  for (const [name, n] of await holders(video)) assert.equal(n, 2, `${video}/${name} copies`);
});

test('a node killed during a large hinted write: the upload is stored on two live nodes', async () => {
  await nodes[3].kill();
  // Noise does not compress: about 40 MB, so the original takes a while to store.
  const file = path.join(scratch, 'large.mp4');
  await run('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i',
    'nullsrc=s=480x270:r=25,geq=random(1)*255:128:128', '-t', '5', '-c:v', 'libx264',
    '-preset', 'ultrafast', '-qp', '0', '-pix_fmt', 'yuv420p', file], { timeoutMs: 120000 });
  const digest = await shaOfFile(file);
  const live = nodes.slice(0, 3);
  const before = new Set((await Promise.all(live.map((n) => listDir(contentDir(n))))).flat());

  // Kill the first live node seen receiving a new file (an unfinished temp
  // file in a video directory that did not exist before).
  let victim = null;
  const watcher = waitFor(async () => {
    for (const node of live) {
      for (const dir of await listDir(contentDir(node))) {
        if (before.has(dir) || dir.startsWith('.')) continue;
        const entries = await listDir(path.join(contentDir(node), dir));
        if (entries.some((e) => e.startsWith('.tmp-'))) {
          victim = node;
          await node.kill();
          return true;
        }
      }
    }
    return false;
  }, { timeoutMs: 120000, intervalMs: 10, what: 'a node to receive the original' });
  const res = await uploadFile(web.url, file, { timeoutMs: 120000 });
  await watcher;
  assert.ok(victim, 'a node was killed during the write');
  const survivors = live.filter((n) => n !== victim);
  if (res.status !== 202) {
    // The other allowed outcome: a clean error, and nothing stored.
    assert.equal(res.status, 503, res.text);
    assert.ok(res.json.error, res.text);
    const after = new Set((await Promise.all(survivors.map((n) => listDir(contentDir(n))))).flat());
    for (const dir of after) assert.ok(before.has(dir) || dir.startsWith('.'), `left ${dir}`);
    return;
  }
  console.log(`large upload after killing ${victim.address} mid-write: ${res.status}`);
  const id = res.json.id;
  await waitForStatus(web.url, id, 'ready', 300000);
  const count = await holders(id, survivors);
  assert.ok(count.has('original'));
  // The write that succeeded was a hinted one: one of the original's owners
  // (the killed node, or the node down before) was replaced by a stand-in.
  const hints = (await Promise.all(survivors.map(hintsOn))).flat();
  assert.ok(hints.some((h) => h.videoId === id && h.name === 'original'
    && [victim.address, nodes[3].address].includes(h.intended)), JSON.stringify(hints));
  for (const [name, n] of count) assert.equal(n, 2, `${id}/${name} copies on the two live nodes`);
  for (const node of survivors) {
    const entries = await listDir(path.join(contentDir(node), id));
    assert.ok(!entries.some((e) => e.startsWith('.tmp-')), `temp files left on ${node.address}`);
    assert.equal(await shaOfFile(path.join(contentDir(node), id, 'original')), digest);
  }
  large = { id, digest, victim };
});

let large;

test('both nodes back: every hint handed back, two copies of every file', async () => {
  if (!large) return;  // the large upload ended with a clean error: nothing to hand back
  await large.victim.restart();
  await nodes[3].restart();
  await waitFor(async () => {
    for (const node of nodes) {
      if ((await hintsOn(node)).length > 0) return false;
    }
    return true;
  }, { timeoutMs: 90000, intervalMs: 200, what: 'every hint to be handed back' });
  const count = await holders(large.id);
  for (const [name, n] of count) assert.equal(n, 2, `${large.id}/${name} copies`);
  for (const node of nodes) {
    if ((await filesOn(node, large.id)).includes('original')) {
      assert.equal(await shaOfFile(path.join(contentDir(node), large.id, 'original')), large.digest);
    }
  }
  const res = await fetch(`${web.url}/content/${large.id}/original`);
  assert.equal(res.status, 200);
  assert.equal(sha(Buffer.from(await res.arrayBuffer())), large.digest);
});
