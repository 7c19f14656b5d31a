// The transcode pipeline over a real cluster (three storage nodes, two replicas
// of every file): segments reach the storage nodes while ffmpeg is still
// running, the DASH manifest and final playlists only at the end, the thumbnail comes out of the ladder run
// (no second ffmpeg pass over the source), and what was stored early plays.
//
// ffmpeg is the real one behind a wrapper put first on the web server's PATH:
// it notes each run, and after the ladder encode it holds on (bounded) until
// the test writes a "release" file, so that what is stored by then can only
// have been stored during the encode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles, getVideo, run, waitFor,
  filesOn,
} from '../lib/streamgrid.mjs';
import { startHeldFfmpegCluster } from '../lib/held_ffmpeg.mjs';

let scratch;
let harness;  // the cluster and its held ffmpeg (tests/lib/held_ffmpeg.mjs)
let nodes = [];
let web;

/** ffmpeg runs the wrapper has seen, one line of arguments each. */
const ffmpegRuns = () => harness.runs();

before(async () => {
  scratch = await tempDir();
  harness = await startHeldFfmpegCluster(scratch);
  ({ nodes, web } = harness);
});

after(async () => {
  await harness?.stop();
});

test('segments reach the storage nodes while ffmpeg runs; manifests last; one ffmpeg pass', async () => {
  // 12 s at 2 s a segment: six segments per stream.
  const file = await makeTestVideo(path.join(scratch, 'long.mp4'),
    { width: 320, height: 180, seconds: 12 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  const id = res.json.id;

  // The ladder encode is over but, as far as the server knows, ffmpeg is still
  // running: the segments it had finished are stored, on two nodes each.
  await waitFor(async () => {
    const r = await fetch(`${web.url}/content/${id}/chunk-0-00002.m4s`);
    await r.arrayBuffer();
    return r.status === 200;
  }, { timeoutMs: 60000, intervalMs: 100, what: 'a segment to be stored during the encode' })
    .catch(async (e) => {
      throw new Error(`${e.message}\nffmpeg runs:\n${(await ffmpegRuns()).join('\n')}\n${web.log()}`);
    });
  const video = await getVideo(web.url, id);
  assert.equal(video.status, 'processing');
  for (const name of ['manifest.mpd', 'thumbnail.jpg']) {
    const r = await fetch(`${web.url}/content/${id}/${name}`);
    await r.arrayBuffer();
    assert.equal(r.status, 404, `${name} is not stored before ffmpeg exits`);
  }
  // The HLS playlists, when there already, are the growing (EVENT) ones that
  // make the video playable while processing (playable.test.mjs checks them).
  const early = await fetch(`${web.url}/content/${id}/media_0.m3u8`);
  const earlyText = await early.text();
  if (early.status === 200) assert.doesNotMatch(earlyText, /#EXT-X-ENDLIST/);
  const copies = (await Promise.all(nodes.map((n) => filesOn(n, id))))
    .filter((names) => names.includes('chunk-0-00001.m4s')).length;
  assert.equal(copies, 2, 'chunk-0-00001.m4s has two copies');

  await harness.release();
  const ready = await waitForStatus(web.url, id, 'ready');
  assert.ok(Math.abs(ready.duration - 12) < 0.5, `duration ${ready.duration}`);

  // Everything a player fetches is there, and the DASH and HLS streams decode
  // to the end.
  for (const name of await playerFiles(web.url, id)) {
    const r = await fetch(`${web.url}/content/${id}/${name}`);
    const body = Buffer.from(await r.arrayBuffer());
    assert.equal(r.status, 200, name);
    assert.ok(body.length > 0, name);
  }
  for (const manifest of ['manifest.mpd', 'master.m3u8']) {
    const out = await run('ffmpeg', ['-v', 'error', '-nostats', '-i',
      `${web.url}/content/${id}/${manifest}`, '-map', '0:v:0', '-f', 'null', '-progress',
      'pipe:1', '-'], { timeoutMs: 120000 });
    const seconds = Math.max(...[...out.matchAll(/out_time_us=(\d+)/g)].map((m) => Number(m[1]))) / 1e6;
    assert.ok(seconds > 11, `${manifest} decodes ${seconds} s`);
  }

  // One ladder run made the thumbnail too: no run of its own.
  const runs = await ffmpegRuns();
  assert.equal(runs.filter((args) => args.includes('manifest.mpd')).length, 1, runs.join('\n'));
  assert.equal(runs.filter((args) => args.includes('thumbnail') && !args.includes('manifest.mpd'))
    .length, 0, runs.join('\n'));
});
