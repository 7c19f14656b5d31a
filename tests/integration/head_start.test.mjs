// The head start (issue 10, upload -> ready): over a real cluster (three
// storage nodes, two replicas of every file), the encode of an upload starts
// on the web server's spool file as soon as the body is checked, while the
// original is being committed to the nodes; the upload is still answered only
// once the original is durable, and the job publishes nothing before that. If
// the commit fails, the encode is killed and nothing of the video is left.
//
// Real ffmpeg and ffprobe behind wrappers first on the web server's PATH
// (tests/lib/held_ffmpeg.mjs, its encode not held; the server runs ffprobe
// for its uploads here, not its probe helper: --probe-helper none): ffmpeg
// notes each run; the ffprobe wrapper, when the test has left an order for
// it, signals the storage nodes (SIGSTOP) while the upload is being checked,
// so the commit cannot complete until the test lets it (SIGCONT): what
// happens meanwhile can only be a head start.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles, getVideo, run, waitFor,
  writeFile, rm, filesOn,
} from '../lib/streamgrid.mjs';
import { startHeldFfmpegCluster } from '../lib/held_ffmpeg.mjs';

let scratch;
let binDir;
const nodes = [];
let web;
let harness;  // the cluster and its ffmpeg/ffprobe wrappers (tests/lib/held_ffmpeg.mjs)

/** ffmpeg ladder runs the wrapper has seen (one line of arguments each). */
async function ladderRuns() {
  return (await harness.runs()).filter((line) => line.includes('manifest.mpd'));
}

/** Entries of the web server's work directory that belong to transcode jobs. */
async function jobEntries() {
  try {
    return (await readdir(path.join(web.dataDir, 'work'))).filter((n) => n.startsWith('job-'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

/** Has the next probe of an upload stop every storage node (SIGSTOP). */
async function stopNodesAtTheNextProbe() {
  await writeFile(path.join(binDir, 'on-probe.new'),
    nodes.map((n) => n.process.pid).join(' '));
  await run('mv', [path.join(binDir, 'on-probe.new'), path.join(binDir, 'on-probe')]);
}

function signalNodes(signal, which = nodes) {
  for (const node of which) {
    try { process.kill(node.process.pid, signal); } catch { /* already gone */ }
  }
}

/** Starts an upload; `settled()` says whether it has been answered yet. */
function startUpload(file) {
  let settled = false;
  const promise = uploadFile(web.url, file).finally(() => { settled = true; });
  return { promise, settled: () => settled };
}

before(async () => {
  scratch = await tempDir();
  binDir = path.join(scratch, 'bin');
  // One order at a time, taken atomically (mv), so only one probe acts on it.
  harness = await startHeldFfmpegCluster(scratch, {
    hold: false,
    wrappers: {
      ffprobe: [
        `if mv '${binDir}/on-probe' '${binDir}/on-probe.taken' 2>/dev/null; then`,
        `  kill -STOP $(cat '${binDir}/on-probe.taken')`,
        'fi',
      ],
    },
  });
  nodes.push(...harness.nodes);
  web = harness.web;
});

after(async () => {
  signalNodes('SIGCONT');
  await harness?.stop();
});

test('the encode starts before the upload is answered, which still waits for the original', async () => {
  const file = await makeTestVideo(path.join(scratch, 'first.mp4'),
    { width: 320, height: 180, seconds: 6 });
  await stopNodesAtTheNextProbe();
  const upload = startUpload(file);
  try {
    // The nodes are stopped from the upload's check on: the ladder run can
    // only have started before the original was committed.
    await waitFor(async () => (await ladderRuns()).length === 1,
      { timeoutMs: 60000, what: 'the ladder encode to start' });
    assert.equal(upload.settled(), false, 'not answered while the original cannot be committed');
    assert.equal((await readdir(path.join(web.dataDir, 'work'))).some((n) => n.startsWith('job-')),
      true, 'a job is encoding');
  } catch (e) {
    throw new Error(`${e.message}\n${web.log()}`);
  } finally {
    signalNodes('SIGCONT');
  }
  const res = await upload.promise;
  assert.equal(res.status, 202, res.text);
  const id = res.json.id;
  assert.match(web.log(), new RegExp(`transcode ${id}: head start: encoding`));

  const ready = await waitForStatus(web.url, id, 'ready');
  assert.ok(Math.abs(ready.duration - 6) < 0.5, `duration ${ready.duration}`);
  for (const name of await playerFiles(web.url, id)) {
    const r = await fetch(`${web.url}/content/${id}/${name}`);
    await r.arrayBuffer();
    assert.equal(r.status, 200, name);
  }
  const out = await run('ffmpeg', ['-v', 'error', '-nostats', '-i',
    `${web.url}/content/${id}/master.m3u8`, '-map', '0:v:0', '-f', 'null', '-progress',
    'pipe:1', '-'], { timeoutMs: 120000 });
  const seconds = Math.max(...[...out.matchAll(/out_time_us=(\d+)/g)].map((m) => Number(m[1]))) / 1e6;
  assert.ok(seconds > 5, `master.m3u8 decodes ${seconds} s`);
  // One ladder run: the head start was the job, not a second encode.
  assert.equal((await ladderRuns()).length, 1);
  await waitFor(async () => (await jobEntries()).length === 0, { what: 'the job directory to go' });
});

test('a commit that fails kills the head start and leaves nothing of the video', async () => {
  const file = await makeTestVideo(path.join(scratch, 'second.mp4'),
    { width: 320, height: 180, seconds: 30 });
  await rm(path.join(binDir, 'runs.log'), { force: true });
  await stopNodesAtTheNextProbe();
  const upload = startUpload(file);
  try {
    await waitFor(async () => (await ladderRuns()).length === 1,
      { timeoutMs: 60000, what: 'the ladder encode to start' });
  } catch (e) {
    signalNodes('SIGCONT');
    throw new Error(`${e.message}\n${web.log()}`);
  }
  // Two of the three nodes die: two copies of the original can no longer be
  // made, so the upload fails (after its bounded retries).
  for (const node of nodes.slice(0, 2)) await node.kill();
  signalNodes('SIGCONT', nodes.slice(2));
  const res = await upload.promise;
  assert.ok(res.status >= 500, `${res.status} ${res.text}`);
  assert.ok(res.json && typeof res.json.error === 'string', res.text);

  const started = web.log().match(/transcode (\S+): head start: encoding/g) || [];
  const id = started.at(-1).split(' ')[1].replace(/:$/, '');
  // The encode (30 s of video: still running when the commit failed) is
  // killed and its scratch files removed.
  await waitFor(async () => (await jobEntries()).length === 0,
    { timeoutMs: 60000, what: 'the head start to be dropped' })
    .catch((e) => { throw new Error(`${e.message}\n${web.log()}`); });
  assert.match(web.log(), new RegExp(`transcode ${id}: head start dropped`));
  assert.doesNotMatch(web.log(), new RegExp(`transcode ${id}: upload accepted`));
  // No record, nothing served, nothing on any node (not even the copies the
  // dead nodes may have had of the original before they died, committed).
  assert.equal(await getVideo(web.url, id), null);
  for (const name of ['master.m3u8', 'media_0.m3u8', 'init-0.m4s', 'chunk-0-00001.m4s']) {
    const r = await fetch(`${web.url}/content/${id}/${name}`);
    await r.arrayBuffer();
    assert.equal(r.status, 404, name);
  }
  for (const node of nodes) {
    assert.deepEqual(await filesOn(node, id), [], `files of ${id} on ${node.dataDir}`);
  }
});
