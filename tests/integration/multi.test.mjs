// Two web servers sharing one 3-member etcd cluster (video records, cluster
// state, leased transcoding job claims) and one storage cluster (3 nodes,
// R = 2): a membership change made through one server is followed by the
// other through an etcd watch, uploads through either server are listed,
// transcoded once and played by both, jobs spread over both servers, and a job
// whose server is killed mid-transcode is taken over by the other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, getVideo, tempDir,
  playerFiles, waitFor, filesOn, runAdmin, getVideoWhenChanged,
} from '../lib/streamgrid.mjs';
import { startEtcdCluster } from '../lib/etcd.mjs';

let scratch;
let etcd;
const nodes = []; // storage nodes, by index; nodes[3] joins in the first test
const servers = {}; // 'A' and 'B': the web servers, each with fullLog()
let smallVideo; // 320x180, 2 s
let otherVideo; // 320x180, 3 s

const sha = (buffer) => createHash('sha256').update(buffer).digest('hex');

// ---- What the web server logs about a job; adjust here if the format changes.
// Today: "transcode <id>: started" when a worker takes a job and
// "transcode <id>: ready" when it finished it.

function linesAbout(log, id) {
  return log.split('\n').filter((line) => line.includes(id));
}

/** How many lines of `log` say that the job of video `id` finished ready. */
function readyCount(log, id) {
  return linesAbout(log, id).filter((line) => /\bready\b/.test(line)).length;
}

/**
 * Waits until the logs of `servers` say that the job of video `id` finished
 * ready: a server updates the record before it logs the outcome, and its
 * output reaches this process later still, so a video seen ready may not be
 * in the logs yet.
 */
async function waitForReadyLine(servers, id) {
  await waitFor(() => servers.some((s) => readyCount(s.fullLog(), id) > 0),
    { timeoutMs: 30000, what: `the log line saying ${id} is ready` });
}

/** Whether `log` says that this server started transcoding video `id`. */
function startedIn(log, id) {
  return linesAbout(log, id).some((line) => /\bstarted\b/.test(line));
}

// ----

/**
 * Starts web server `name` ('A' or 'B') over the shared etcd and storage
 * cluster, with its own data directory (the same one again on a restart).
 */
async function startServer(name) {
  // A seeds the cluster with the first three nodes; B joins the one stored in
  // etcd without being told of any node.
  const addresses = nodes.slice(0, 3).map((n) => n.address).join(',');
  const content = name === 'A' ? `cluster:${addresses}` : 'cluster';
  const server = await startWeb({
    dataDir: path.join(scratch, `web-${name}`),
    args: ['--metadata', etcd.flag, '--content', content,
      '--replication-factor', '2', '--server-id', name,
      '--job-lease-ttl', '3', '--job-rescan-interval-ms', '500'],
  });
  // server.log() keeps only the last 64 KiB; keep everything, since the job
  // lines are counted over a whole test.
  let text = server.log();
  const keep = (chunk) => { text += chunk.toString(); };
  server.process.stdout.on('data', keep);
  server.process.stderr.on('data', keep);
  server.fullLog = () => text;
  servers[name] = server;
  return server;
}

/** Runs streamgrid-admin; resolves to { code, stdout, stderr } whatever the exit code. */
const cli = (...args) => runAdmin(args);

async function listNodes(server) {
  const res = await cli('--json', 'list', server.admin);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout);
}

async function upload(server, file) {
  const res = await uploadFile(server.url, file, { timeoutMs: 60000 });
  assert.equal(res.status, 202, res.text);
  return res.json.id;
}

/** Every file a player needs for `id`, fetched from each of `urls`: 200 and the same bytes. */
async function expectPlayable(id, urls) {
  const names = await playerFiles(urls[0], id);
  assert.ok(names.length > 5, `player files of ${id}: ${names}`);
  for (const name of names) {
    let digest = null;
    for (const url of urls) {
      const res = await fetch(`${url}/content/${id}/${name}`);
      assert.equal(res.status, 200, `${url}/content/${id}/${name}: ${res.status}`);
      const got = sha(Buffer.from(await res.arrayBuffer()));
      if (digest === null) digest = got;
      assert.equal(got, digest, `bytes of ${id}/${name} from ${url}`);
    }
  }
}

/** The ids GET /api/videos lists on `server`. */
async function listedIds(server) {
  const res = await fetch(`${server.url}/api/videos?limit=1000`);
  assert.equal(res.status, 200);
  return (await res.json()).videos.map((v) => v.id);
}

before(async () => {
  scratch = await tempDir();
  etcd = await startEtcdCluster(3);
  nodes.push(...await Promise.all([0, 1, 2].map((i) =>
    startStorage({ dataDir: path.join(scratch, `node${i}`), etcd: etcd.endpoints.join(',') }))));
  // One after the other: the first seeds the cluster state in etcd, the
  // second finds it there.
  await startServer('A');
  await startServer('B');
  smallVideo = await makeTestVideo(path.join(scratch, 'small.mp4'),
    { width: 320, height: 180, seconds: 2 });
  otherVideo = await makeTestVideo(path.join(scratch, 'other.mp4'),
    { width: 320, height: 180, seconds: 3 });
});

after(async () => {
  for (const server of Object.values(servers)) await server?.stop();
  for (const node of nodes) await node.stop();
  await etcd?.stopAll();
});

test('a node announced in etcd and added by its id through one server is used by the other within a second', async () => {
  const { A, B } = servers;
  const beforeAdd = await listNodes(B);
  assert.equal(beforeAdd.nodes.length, 3);
  for (const node of beforeAdd.nodes) {
    assert.equal(node.state, 'active');
    assert.equal(node.announced, true, `member ${node.id} announced`);
  }
  nodes.push(await startStorage({
    dataDir: path.join(scratch, 'node3'), nodeId: 'node3', etcd: etcd.endpoints.join(','),
  }));
  // Both servers offer the running node, announced in etcd, as available.
  for (const server of [A, B]) {
    const offered = await waitFor(async () => {
      const listed = await listNodes(server);
      return listed.nodes.find((n) => n.id === 'node3') || null;
    }, { timeoutMs: 10000, what: 'node3 to be listed as available' });
    assert.equal(offered.state, 'available');
    assert.equal(offered.address, nodes[3].address);
    assert.equal(offered.reachable, true);
    assert.equal(offered.announced, true);
  }
  const text = await cli('list', A.admin);
  assert.match(text.stdout, /node3\s+\S+\s+available\s+up/);

  // Added by its id alone: the server takes the announced address.
  const added = await cli('add', A.admin, 'node3');
  const addedAt = Date.now();
  assert.equal(added.code, 0, added.stderr);
  // Both servers took part: registered, with the new state drained, one of
  // them the runner.
  const status = JSON.parse((await cli('--json', 'status', B.admin)).stdout);
  assert.deepEqual(status.web_servers.map((s) => s.id).sort(), ['A', 'B']);
  assert.ok(['A', 'B'].includes(status.migration_runner), `runner ${status.migration_runner}`);
  assert.equal(status.migration.state, 'done');
  const onA = await listNodes(A);
  assert.equal(onA.nodes.length, 4);
  const joined = onA.nodes.find((n) => n.id === 'node3');
  assert.equal(joined?.address, nodes[3].address);
  assert.equal(joined?.state, 'active');
  assert.ok(onA.placement_version > beforeAdd.placement_version);

  // B puts the new placement in force on its own, from its watch of the
  // cluster state in etcd: every node active, the same placement version.
  let polls = 0;
  const seen = await waitFor(async () => {
    polls++;
    const listed = await listNodes(B);
    const following = listed.nodes.length === 4 &&
      listed.nodes.every((n) => n.state === 'active') &&
      listed.placement_version === onA.placement_version;
    return following ? { at: Date.now(), listed } : null;
  }, { timeoutMs: 10000, intervalMs: 50, what: 'B to list the 4 nodes' });
  const lag = seen.at - addedAt;
  console.log(`B listed the new node ${lag} ms after A's migration finished (${polls} polls)`);
  assert.ok(lag <= 1000, `B followed ${lag} ms after A's change (limit 1000 ms)`);
  assert.ok(seen.listed.nodes.some((n) => n.address === nodes[3].address));

  // B's writes use the new placement: an upload through B lands on node 4,
  // every file on exactly two of the four nodes.
  const id = await upload(B, smallVideo);
  await waitForStatus(B.url, id, 'ready', 120000);
  const holders = new Map();
  for (const node of nodes) {
    for (const name of await filesOn(node, id)) holders.set(name, (holders.get(name) || 0) + 1);
  }
  assert.ok(holders.has('original'));
  for (const [name, count] of holders) assert.equal(count, 2, `copies of ${id}/${name}`);
  assert.ok((await filesOn(nodes[3], id)).length > 0, `no file of ${id} on the new node`);
});

test('uploads through either server are listed by both and play', async () => {
  const { A, B } = servers;
  const ids = [
    await upload(A, smallVideo), await upload(B, otherVideo),
    await upload(A, otherVideo), await upload(B, smallVideo),
  ];
  for (const server of [A, B]) {
    const listed = await listedIds(server);
    for (const id of ids) assert.ok(listed.includes(id), `${id} listed by ${server.url}`);
  }
  for (const id of ids) {
    await waitForStatus(A.url, id, 'ready', 120000);
    const onB = await waitForStatus(B.url, id, 'ready', 30000);
    const onA = await getVideo(A.url, id);
    assert.deepEqual(onA, onB, `${id}: both servers give the same record`);
  }
  for (const id of ids) await expectPlayable(id, [A.url, B.url]);
});

test('a long poll on one server hears of every change, whichever server makes it', async () => {
  const { A, B } = servers;
  const id = await upload(A, otherVideo);
  let answer = await getVideoWhenChanged(B.url, id, null);
  assert.equal(answer.status, 200);
  const seen = [answer.video];
  while (answer.video.status === 'processing') {
    const next = await getVideoWhenChanged(B.url, id, answer.etag, 30);
    // The encode changes the record every second or so: a 304 would mean the
    // wait missed a change and ran to its end.
    assert.equal(next.status, 200, `answered ${next.status} after ${next.ms} ms`);
    assert.notEqual(next.etag, answer.etag);
    seen.push(next.video);
    answer = next;
  }
  assert.equal(answer.video.status, 'ready');
  assert.ok(seen.length >= 2);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i].progress >= seen[i - 1].progress, `progress ${seen.map((v) => v.progress)}`);
  }
  assert.deepEqual(answer.video, await getVideo(A.url, id), 'both servers give the same record');
});

test('jobs spread over both servers', async () => {
  const { A, B } = servers;
  // All at once, so both servers have queues and their rescans compete for them.
  const ids = await Promise.all([0, 1, 2, 3, 4, 5].map((i) =>
    upload(i % 2 ? B : A, i % 3 ? smallVideo : otherVideo)));
  for (const id of ids) await waitForStatus(A.url, id, 'ready', 150000);
  for (const id of ids) await waitForReadyLine([A, B], id);

  const ranOn = { A: 0, B: 0 };
  for (const id of ids) {
    const counts = { A: readyCount(A.fullLog(), id), B: readyCount(B.fullLog(), id) };
    assert.equal(counts.A + counts.B, 1,
      `job ${id} ran ${counts.A} time(s) on A and ${counts.B} on B:\n` +
      `A: ${linesAbout(A.fullLog(), id).join('\n   ')}\nB: ${linesAbout(B.fullLog(), id).join('\n   ')}`);
    ranOn[counts.A ? 'A' : 'B']++;
    console.log(`${id}: uploaded to ${ids.indexOf(id) % 2 ? 'B' : 'A'}, ran on ${counts.A ? 'A' : 'B'}`);
  }
  console.log(`jobs run: ${JSON.stringify(ranOn)}`);
  assert.ok(ranOn.A > 0 && ranOn.B > 0, `every job on one server: ${JSON.stringify(ranOn)}`);
});

test('a job whose server dies mid-transcode completes on the other', async () => {
  const { B } = servers;
  const longVideo = await makeTestVideo(path.join(scratch, 'long.mp4'),
    { width: 640, height: 360, seconds: 30 });

  // Upload to A and wait until A (not B) is transcoding it. Should B's rescan
  // have claimed the fresh job first, try again with another upload.
  let id;
  for (let attempt = 1; ; attempt++) {
    const candidate = await upload(servers.A, longVideo);
    const runner = await waitFor(async () => {
      const video = await getVideo(B.url, candidate);
      if (!video) return null;
      if (video.status !== 'processing') return video.status;
      if (!(video.progress > 0)) return null;
      const onA = startedIn(servers.A.fullLog(), candidate);
      const onB = startedIn(B.fullLog(), candidate);
      if (onB) return 'B';
      return onA ? 'A' : null;
    }, { timeoutMs: 60000, intervalMs: 100, what: `${candidate} to be transcoding` });
    if (runner === 'A') {
      id = candidate;
      break;
    }
    assert.ok(attempt < 3, `A never got to transcode the upload (last: ${runner})`);
    await waitForStatus(B.url, candidate, 'ready', 120000);
  }

  const A = servers.A;
  await A.kill();
  assert.equal(readyCount(A.fullLog(), id), 0, 'A finished the job before it was killed');
  const killedAt = Date.now();
  const video = await waitForStatus(B.url, id, 'ready', 120000);
  await waitForReadyLine([B], id);
  console.log(`B finished the job ${Date.now() - killedAt} ms after A was killed:\n` +
    linesAbout(B.fullLog(), id).join('\n'));
  assert.equal(video.progress, 100);
  assert.equal(readyCount(B.fullLog(), id), 1, `B's log:\n${linesAbout(B.fullLog(), id).join('\n')}`);
  await expectPlayable(id, [B.url]);

  // A comes back on its own data directory, serves the video and does not
  // run the finished job again.
  const restarted = await startServer('A');
  const again = await waitForStatus(restarted.url, id, 'ready', 30000);
  assert.equal(again.status, 'ready');
  await expectPlayable(id, [restarted.url, B.url]);
  assert.equal(readyCount(restarted.fullLog(), id), 0);
});
