// The web server with its metadata in a real 3-member etcd cluster: records
// live in etcd, everything works with one member down, uploads acknowledged
// while the leader is killed are kept and play, and without a quorum uploads
// get a clear 503 and leave nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles,
} from '../lib/streamgrid.mjs';
import { startEtcdCluster } from '../lib/etcd.mjs';

let scratch;
let etcd;
let web;
let video;

before(async () => {
  scratch = await tempDir();
  etcd = await startEtcdCluster(3);
  web = await startWeb({ dataDir: path.join(scratch, 'web'), args: ['--metadata', etcd.flag] });
  video = await makeTestVideo(path.join(scratch, 'v.mp4'), { width: 320, height: 180, seconds: 2 });
});

after(async () => {
  await web?.stop();
  await etcd?.stopAll();
});

/** The record etcd holds for `id` (through etcd's HTTP gateway), or null. */
async function etcdRecord(id) {
  const key = Buffer.from(`/streamgrid/videos/${id}`).toString('base64');
  for (const endpoint of etcd.endpoints) {
    try {
      const res = await fetch(`http://${endpoint}/v3/kv/range`, {
        method: 'POST', body: JSON.stringify({ key }), signal: AbortSignal.timeout(3000),
      });
      const body = await res.json();
      if (!body.kvs) return null;
      return JSON.parse(Buffer.from(body.kvs[0].value, 'base64').toString());
    } catch {
      // that member is down: ask the next
    }
  }
  throw new Error('no etcd member answered');
}

/** Checks that `id` is listed, ready, and that every file a player needs is served. */
async function expectPlayable(id) {
  await waitForStatus(web.url, id, 'ready', 120000);
  const listed = await (await fetch(`${web.url}/api/videos?limit=1000`)).json();
  assert.ok(listed.videos.some((v) => v.id === id), `${id} listed`);
  for (const name of await playerFiles(web.url, id)) {
    const res = await fetch(`${web.url}/content/${id}/${name}`);
    assert.equal(res.status, 200, `${id}/${name}`);
    await res.arrayBuffer();
  }
}

async function contentDirs() {
  try {
    return (await readdir(path.join(scratch, 'web', 'content'))).filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

test('video records live in etcd', async () => {
  const res = await uploadFile(web.url, video);
  assert.equal(res.status, 202, res.text);
  await expectPlayable(res.json.id);
  const record = await etcdRecord(res.json.id);
  assert.equal(record.status, 'ready');
  assert.equal(record.id, res.json.id);
});

test('everything works with one member stopped', async () => {
  // The member the web server's client tries first.
  await etcd.stop(0);
  const res = await uploadFile(web.url, video, { timeoutMs: 60000 });
  assert.equal(res.status, 202, res.text);
  await expectPlayable(res.json.id);
  const del = await fetch(`${web.url}/api/videos/${res.json.id}`, { method: 'DELETE' });
  assert.equal(del.status, 204);
  assert.equal((await fetch(`${web.url}/api/videos/${res.json.id}`)).status, 404);
  await etcd.restart(0);
  await etcd.waitHealthy(0);
});

test('uploads acknowledged while the leader is killed are kept and play', async () => {
  const leader = await etcd.leaderIndex();
  const results = [];
  let killedAt = 0;
  for (let i = 0; i < 8; i++) {
    if (i === 2) {
      await etcd.kill(leader);
      killedAt = Date.now();
    }
    const res = await uploadFile(web.url, video, { timeoutMs: 60000 });
    results.push({ status: res.status, id: res.json?.id, error: res.json?.error, at: Date.now() });
  }
  console.log(JSON.stringify(results.map(({ status, error }) => ({ status, error }))));
  for (const r of results) {
    // Refusals are clear (503 with a reason), never a 500 or a hang.
    assert.ok(r.status === 202 || r.status === 503, `${r.status} ${r.error}`);
  }
  const accepted = results.filter((r) => r.status === 202);
  // Uploads work again within a few seconds of the kill.
  const firstAfter = accepted.find((r) => r.at > killedAt);
  assert.ok(firstAfter, 'an upload succeeded after the leader was killed');
  assert.ok(firstAfter.at - killedAt < 30000, `first success ${firstAfter.at - killedAt} ms after`);
  const listed = (await (await fetch(`${web.url}/api/videos?limit=1000`)).json()).videos
    .map((v) => v.id);
  for (const r of accepted) {
    assert.ok(listed.includes(r.id), `acknowledged upload ${r.id} is listed`);
    await expectPlayable(r.id);
  }
  await etcd.restart(leader);
  await etcd.waitHealthy(leader);
});

test('without a quorum uploads get a clear 503 and leave nothing', async () => {
  const before = await contentDirs();
  const listBefore = (await (await fetch(`${web.url}/api/videos?limit=1000`)).json()).videos.length;
  await etcd.stop(1);
  await etcd.stop(2);
  const res = await uploadFile(web.url, video, { timeoutMs: 90000 });
  assert.equal(res.status, 503, res.text);
  assert.match(res.json.error, /metadata store \(etcd\) unavailable/);
  assert.deepEqual((await contentDirs()).sort(), before.sort());

  await etcd.restart(1);
  await etcd.restart(2);
  await etcd.waitHealthy(1);
  await etcd.waitHealthy(2);
  const listAfter = (await (await fetch(`${web.url}/api/videos?limit=1000`)).json()).videos.length;
  assert.equal(listAfter, listBefore);
  const again = await uploadFile(web.url, video, { timeoutMs: 60000 });
  assert.equal(again.status, 202, again.text);
  await expectPlayable(again.json.id);
});
