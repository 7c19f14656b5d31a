// DELETE of a video while its transcode is storing segments, over a real
// cluster (three storage nodes, two replicas of every file): the server
// cancels the job and waits until it has stopped storing before it removes
// the files, so once DELETE is answered no file of the video is on any node,
// and none appears afterwards (a segment stored after the removal would have
// no record pointing at it).
//
// Real ffmpeg behind the held wrapper (tests/lib/held_ffmpeg.mjs), reading
// its input at real-time speed, so that segments are being stored while the
// test deletes; held after its encode, so the video is still processing
// whatever the machine's speed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  makeTestVideo, uploadFile, tempDir, getVideo, waitFor, filesOn, startWeb,
} from '../lib/streamgrid.mjs';
import { installHeldFfmpeg, startHeldFfmpegCluster } from '../lib/held_ffmpeg.mjs';

let scratch;
let harness;  // the cluster and its held ffmpeg
let nodes = [];
let web;

before(async () => {
  scratch = await tempDir();
  harness = await startHeldFfmpegCluster(scratch, { realtime: true });
  ({ nodes, web } = harness);
});

after(async () => {
  await harness?.release();
  await harness?.stop();
});

/** Every file of `id` on any node, as "node<i>/<name>". */
async function filesOnNodes(id) {
  const all = [];
  for (const [i, node] of nodes.entries()) {
    for (const name of await filesOn(node, id)) all.push(`node${i}/${name}`);
  }
  return all;
}

test('DELETE during a transcode leaves no file of the video on any node', async () => {
  // 20 s read in real time, 2 s a segment: a segment stored every 2 s or so.
  const file = await makeTestVideo(path.join(scratch, 'long.mp4'),
    { width: 320, height: 180, seconds: 20 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  const id = res.json.id;

  // The job is storing segments (the encode goes on).
  await waitFor(async () => (await filesOnNodes(id)).some((f) => f.endsWith('.m4s')),
    { timeoutMs: 120000, intervalMs: 100, what: 'a segment to be stored during the encode' })
    .catch((e) => { throw new Error(`${e.message}\n${web.log()}`); });

  const deleted = await fetch(`${web.url}/api/videos/${id}`, { method: 'DELETE' });
  assert.equal(deleted.status, 204, await deleted.text());
  assert.deepEqual(await filesOnNodes(id), [], 'no file left once DELETE is answered');
  assert.equal(await getVideo(web.url, id), null);

  // The job has ended (it did before DELETE removed the files): still nothing.
  await waitFor(() => new RegExp(`transcode ${id}: interrupted`).test(web.log()),
    { timeoutMs: 60000, what: 'the job to end' })
    .catch((e) => { throw new Error(`${e.message}\n${web.log()}`); });
  assert.deepEqual(await filesOnNodes(id), [], 'no file stored after DELETE');
  assert.doesNotMatch(web.log(), new RegExp(`transcode ${id}: (ready|failed)`));
});

test('DELETE during a transcode on a local content store removes the video\'s directory', async () => {
  // The same on one server storing on its own disk: a segment stored after
  // the directory's removal would bring the directory back.
  const dir = path.join(scratch, 'local');
  const ffmpeg = await installHeldFfmpeg(path.join(dir, 'bin'), { realtime: true });
  const server = await startWeb({ dataDir: path.join(dir, 'web'), env: ffmpeg.env });
  try {
    const file = await makeTestVideo(path.join(dir, 'long.mp4'),
      { width: 320, height: 180, seconds: 20 });
    const res = await uploadFile(server.url, file);
    assert.equal(res.status, 202, res.text);
    const id = res.json.id;
    const contentDir = path.join(server.dataDir, 'content', id);
    await waitFor(async () => (await readdir(contentDir)).some((f) => f.endsWith('.m4s')),
      { timeoutMs: 120000, intervalMs: 100, what: 'a segment to be stored during the encode' })
      .catch((e) => { throw new Error(`${e.message}\n${server.log()}`); });

    const deleted = await fetch(`${server.url}/api/videos/${id}`, { method: 'DELETE' });
    assert.equal(deleted.status, 204, await deleted.text());
    await waitFor(() => new RegExp(`transcode ${id}: interrupted`).test(server.log()),
      { timeoutMs: 60000, what: 'the job to end' })
      .catch((e) => { throw new Error(`${e.message}\n${server.log()}`); });
    const left = await readdir(path.join(server.dataDir, 'content'));
    assert.ok(!left.includes(id), `the video's directory is gone (${left})`);
  } finally {
    await ffmpeg.release();
    await server.stop();
  }
});
