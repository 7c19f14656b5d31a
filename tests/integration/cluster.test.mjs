// The web server over a cluster of three storage nodes with two replicas of
// every file: placement, reads and uploads surviving a killed node, uploads refused while
// two nodes are down, recovery, and the cluster surviving a restart
// of the web server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles,
  run, waitFor, filesOn,
} from '../lib/streamgrid.mjs';

let scratch;
let webDir;
let nodes = [];
let web;
const videos = []; // { id, files: Map<name, sha256> }

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

function webArgs(addresses, replicationFactor = 2) {
  return ['--content', `cluster:${addresses.join(',')}`,
    '--replication-factor', String(replicationFactor)];
}

/** Video ids that have a directory on `node`. */
async function videoDirsOn(node) {
  try {
    return (await readdir(path.join(node.dataDir, 'data', 'content'))).filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

async function fetchAll(url, video) {
  for (const [name, digest] of video.files) {
    const res = await fetch(`${url}/content/${video.id}/${name}`);
    assert.equal(res.status, 200, `${name}: ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(sha(body), digest, `bytes of ${video.id}/${name}`);
  }
}

before(async () => {
  scratch = await tempDir();
  webDir = path.join(scratch, 'web');
  for (let i = 0; i < 3; i++) {
    nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
  }
  web = await startWeb({ dataDir: webDir, args: webArgs(nodes.map((n) => n.address)) });
});

after(async () => {
  await web?.stop();
  for (const node of nodes) await node.stop();
});

test('videos are stored with two replicas of every file', async () => {
  for (let i = 0; i < 2; i++) {
    const file = await makeTestVideo(path.join(scratch, `v${i}.mp4`),
      { width: 320, height: 180, seconds: 4 });
    const res = await uploadFile(web.url, file);
    assert.equal(res.status, 202, res.text);
    videos.push({ id: res.json.id, files: new Map() });
  }
  for (const video of videos) {
    await waitForStatus(web.url, video.id, 'ready');
    const names = await playerFiles(web.url, video.id);
    assert.ok(names.length > 5, `files of ${video.id}: ${names}`);
    for (const name of names) {
      const res = await fetch(`${web.url}/content/${video.id}/${name}`);
      assert.equal(res.status, 200, name);
      video.files.set(name, sha(Buffer.from(await res.arrayBuffer())));
    }
    // Every stored file (the original included) is on exactly two nodes.
    const holders = new Map();
    for (const node of nodes) {
      for (const name of await filesOn(node, video.id)) {
        holders.set(name, (holders.get(name) || 0) + 1);
      }
    }
    assert.ok(holders.has('original'));
    for (const name of names) assert.ok(holders.has(name), `${name} stored`);
    for (const [name, count] of holders) assert.equal(count, 2, `${video.id}/${name} copies`);
  }
  // The files of a video spread over the ring: every node holds some.
  for (const node of nodes) assert.ok((await videoDirsOn(node)).length > 0);
});

test('everything is still served with one node killed', async () => {
  await nodes[0].kill();
  for (const video of videos) await fetchAll(web.url, video);
  // A player decodes the whole stream.
  for (const video of videos) {
    await run('ffmpeg', ['-v', 'error', '-nostats', '-i',
      `${web.url}/content/${video.id}/manifest.mpd`, '-f', 'null', '-'], { timeoutMs: 120000 });
  }
});

test('with one node of three killed, uploads still become ready with two copies', async () => {
  // The copies meant for the dead node go to the third node (hinted handoff,
  // see handoff.test.mjs for the hand-back).
  const file = await makeTestVideo(path.join(scratch, 'one-down.mp4'),
    { width: 320, height: 180, seconds: 2 });
  const res = await uploadFile(web.url, file, { timeoutMs: 60000 });
  assert.equal(res.status, 202, res.text);
  await waitForStatus(web.url, res.json.id, 'ready');
  const live = nodes.slice(1);
  const holders = new Map();
  for (const node of live) {
    for (const name of await filesOn(node, res.json.id)) {
      holders.set(name, (holders.get(name) || 0) + 1);
    }
  }
  assert.ok(holders.has('original'));
  for (const [name, count] of holders) assert.equal(count, 2, `${res.json.id}/${name} copies`);
});

test('uploads are refused with 503 while fewer than R nodes are up, and leave nothing', async () => {
  // With one node down a stand-in takes its copies (see handoff.test.mjs);
  // with two of three down no file can get two copies: the upload is refused
  // before it is accepted.
  await nodes[1].kill();
  const file = await makeTestVideo(path.join(scratch, 'down.mp4'),
    { width: 320, height: 180, seconds: 2 });
  const live = nodes.slice(2);
  const before = new Set((await Promise.all(live.map(videoDirsOn))).flat());
  const listBefore = (await (await fetch(`${web.url}/api/videos?limit=100`)).json()).videos.length;
  for (let attempt = 0; attempt < 3; attempt++) {
    const res = await uploadFile(web.url, file, { timeoutMs: 20000 });
    assert.equal(res.status, 503, res.text);
    assert.match(res.json.error, /not enough storage nodes are up/);
    // Which node is down is the operator's business (it is in the log), not the client's.
    assert.ok(!res.json.error.includes(nodes[0].address), res.json.error);
  }
  const after = new Set((await Promise.all(live.map(videoDirsOn))).flat());
  assert.deepEqual([...after].sort(), [...before].sort());
  const listAfter = (await (await fetch(`${web.url}/api/videos?limit=100`)).json()).videos.length;
  assert.equal(listAfter, listBefore);
});

test('uploads work again once the node is back', async () => {
  await nodes[1].restart();
  await nodes[0].restart();
  const file = path.join(scratch, 'down.mp4');
  const res = await waitFor(async () => {
    const r = await uploadFile(web.url, file, { timeoutMs: 20000 });
    console.log(`upload after restart: ${r.status} ${r.text}`);
    if (r.status !== 202 && r.status !== 503) throw new Error(`${r.status} ${r.text}`);
    return r.status === 202 ? r : null;
  }, { timeoutMs: 30000, intervalMs: 500, what: 'an upload to be accepted' });
  await waitForStatus(web.url, res.json.id, 'ready');
});

test('a restarted web server keeps its cluster', async () => {
  await web.stop();
  // Other flags now: the stored cluster wins, they only seed a new one.
  web = await startWeb({ dataDir: webDir, args: webArgs([nodes[0].address], 1) });
  assert.match(web.log(), /stored cluster/);
  for (const video of videos) await fetchAll(web.url, video);
});
