// A video is playable while it is still being encoded (issue 10's moonshot),
// over a real cluster (three storage nodes, two replicas of every file): once
// the first segment of every stream is stored, HLS EVENT playlists listing only
// stored segments and the master playlist are served and the API says
// `playable`; the playlists grow as the encode goes on; every file any of them
// names is there whenever it is read; when the job ends, the VOD playlists
// (with #EXT-X-ENDLIST) and the DASH manifest replace them.
//
// ffmpeg is the real one behind a wrapper first on the web server's PATH: it
// reads its input at real-time speed (-re), so the encode of a 16 s source
// takes about 16 s and the playlists grow while the test watches, and after the
// encode it holds on (bounded) until the test writes a "release" file, so the
// video is still `processing` whatever the machine's speed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  makeTestVideo, uploadFile, waitForStatus, tempDir, getVideo, run, waitFor, hlsUris,
} from '../lib/streamgrid.mjs';
import { startHeldFfmpegCluster } from '../lib/held_ffmpeg.mjs';

let scratch;
let harness;  // the cluster and its held ffmpeg (tests/lib/held_ffmpeg.mjs)
let web;

before(async () => {
  scratch = await tempDir();
  harness = await startHeldFfmpegCluster(scratch, { realtime: true });
  web = harness.web;
});

after(async () => {
  await harness?.stop();
});

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(30000) });
  const body = await res.text();
  return { status: res.status, body };
}

/** The #EXT-X-MAP URI of a media playlist, if any. */
function mapUri(playlist) {
  const m = playlist.match(/#EXT-X-MAP:URI="([^"]+)"/);
  return m ? m[1] : null;
}

/** The threads of process `pid`: [{ comm, nice }] (none if it is gone). */
async function threadsOf(pid) {
  const threads = [];
  const tids = await readdir(`/proc/${pid}/task`).catch(() => []);
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    threads.push({ comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), nice: Number(fields[16]) });
  }
  return threads;
}

/** Every live descendant of process `pid`. */
async function descendantsOf(pid) {
  const found = [];
  const tids = await readdir(`/proc/${pid}/task`).catch(() => []);
  for (const tid of tids) {
    const children = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    for (const child of children.split(' ').filter(Boolean).map(Number)) {
      found.push(child, ...await descendantsOf(child));
    }
  }
  return found;
}

test('a processing video plays from stored segments: EVENT playlists grow, then VOD', async () => {
  // 16 s at 2 s a segment: eight segments per stream.
  const file = await makeTestVideo(path.join(scratch, 'long.mp4'),
    { width: 320, height: 180, seconds: 16 });
  const res = await uploadFile(web.url, file);
  assert.equal(res.status, 202, res.text);
  const id = res.json.id;
  const base = `${web.url}/content/${id}/`;

  // Nothing playable is announced before the master playlist is served.
  const playable = await waitFor(async () => {
    const video = await getVideo(web.url, id);
    assert.notEqual(video.status, 'failed', video.error);
    if (!video.playable) return null;
    return video;
  }, { timeoutMs: 120000, intervalMs: 100, what: 'the video to be playable' })
    .catch((e) => { throw new Error(`${e.message}\n${web.log()}`); });
  assert.equal(playable.status, 'processing');
  assert.equal(playable.hls_url, `/content/${id}/master.m3u8`);
  assert.equal(playable.dash_url, undefined, 'no DASH manifest until the end');

  // Until ffmpeg is done (and as long as it is held after that), read every
  // playlist again and again: each names only files that are there.
  const counts = new Map(); // media playlist -> segment counts seen, in order
  let checks = 0;
  let done = false;
  // Once playable, the stores made while ffmpeg runs drop below it
  // (--transcode-store-nice, default 10); ffmpeg keeps the server's priority.
  const webPid = web.process.pid;
  const serverNice = (await threadsOf(webPid)).find((t) => t.comm === 'streamgrid-web').nice;
  let lowered = false;
  const ffmpegNices = new Set();
  while (!done) {
    done = await harness.encoded();
    if (!done) {
      const publishers = (await threadsOf(webPid)).filter((t) => t.comm === 'sg-publish');
      if (publishers.some((t) => t.nice === Math.max(serverNice, 10))) lowered = true;
      for (const child of await descendantsOf(webPid)) {
        const comm = await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '');
        if (comm.trim() !== 'ffmpeg') continue;
        for (const t of await threadsOf(child)) ffmpegNices.add(t.nice);
      }
    }
    const master = await get(base + 'master.m3u8');
    assert.equal(master.status, 200, 'the master stays served once playable');
    const playlists = hlsUris(master.body).filter((u) => u.endsWith('.m3u8'));
    assert.ok(playlists.length >= 2, `video and audio playlists: ${master.body}`);
    for (const name of playlists) {
      const playlist = await get(base + name);
      assert.equal(playlist.status, 200, `${name} is stored before the master names it`);
      assert.match(playlist.body, /#EXT-X-PLAYLIST-TYPE:EVENT/, name);
      assert.doesNotMatch(playlist.body, /#EXT-X-ENDLIST/, `${name} does not end while processing`);
      const segments = hlsUris(playlist.body).filter((u) => u.endsWith('.m4s'));
      assert.ok(segments.length >= 1, `${name} lists a segment`);
      for (const segment of [mapUri(playlist.body), ...segments]) {
        const r = await fetch(base + segment, { method: 'HEAD' });
        assert.equal(r.status, 200, `${name} names ${segment}, which must be stored`);
        checks++;
      }
      const seen = counts.get(name) || [];
      if (seen[seen.length - 1] !== segments.length) counts.set(name, [...seen, segments.length]);
    }
  }
  assert.ok(lowered, 'a store thread (sg-publish) ran at nice 10 while ffmpeg encoded');
  assert.ok(ffmpegNices.size > 0, 'ffmpeg seen while it encoded');
  assert.deepEqual([...ffmpegNices], [serverNice], 'ffmpeg at the server\'s priority');
  const video = await getVideo(web.url, id);
  assert.equal(video.status, 'processing', 'held after the encode: still processing');
  assert.ok(checks > 0);
  // The playlists grew while the test watched (read at real-time speed, the
  // source takes about 16 s to encode) and ended up listing every segment.
  const grew = [...counts.values()].some((seen) => seen.length >= 2);
  assert.ok(grew, `playlists grew: ${JSON.stringify([...counts])}`);
  for (const [name, seen] of counts) {
    assert.ok(seen.every((n, i) => i === 0 || n > seen[i - 1]), `${name} only grows: ${seen}`);
  }
  for (const name of ['manifest.mpd', 'thumbnail.jpg']) {
    const r = await get(base + name);
    assert.equal(r.status, 404, `${name} is stored only at the end`);
  }

  await harness.release();
  const ready = await waitForStatus(web.url, id, 'ready');
  assert.equal(ready.playable, true);
  assert.ok(ready.dash_url, 'DASH once ready');
  // The final playlists replace the EVENT ones (the web server's cache may
  // serve the old one for its 2 s TTL).
  await waitFor(async () => {
    const playlist = await get(base + 'media_0.m3u8');
    return /#EXT-X-PLAYLIST-TYPE:VOD/.test(playlist.body) && /#EXT-X-ENDLIST/.test(playlist.body);
  }, { timeoutMs: 60000, intervalMs: 200, what: 'the VOD playlist' });
  const out = await run('ffmpeg', ['-v', 'error', '-nostats', '-i', base + 'master.m3u8',
    '-map', '0:v:0', '-f', 'null', '-progress', 'pipe:1', '-'], { timeoutMs: 120000 });
  const seconds = Math.max(...[...out.matchAll(/out_time_us=(\d+)/g)].map((m) => Number(m[1]))) / 1e6;
  assert.ok(seconds > 15, `master.m3u8 decodes ${seconds} s`);
});
