// Upload -> ready: from the first byte of POST /upload until the video's
// status is ready, against (nginx PUT of the same file + one plain ffmpeg run
// of exactly the ladder StreamGrid runs, as bench/ladder_command prints it),
// for sources of several lengths.
import { mkdir, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { buildDir } from '../../tests/lib/streamgrid.mjs';
import { startNginx } from './nginx.mjs';
import { curlPut, noisySource, nodeUpload } from './media.mjs';
import { waitFor } from '../../tests/lib/streamgrid.mjs';
import { log, median, ratio, runChecked, sleep } from './util.mjs';

const ladderCommand = path.join(buildDir, 'bench/ladder_command');

/**
 * GET `url` over `agent` (kept-alive connections); { status, body } within
 * 10 s. The poll below runs on the same two cores as the server and ffmpeg:
 * node:http costs it a fraction of the CPU fetch() does per request (a
 * client on another machine would cost the server's cores nothing).
 */
function get(url, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.on('error', reject);
  });
}

// Progress (percent) from which the status is polled every 100 ms again.
const kNearlyDone = 90;

/**
 * Polls until the video is ready; also notes when it first became playable:
 * its HLS master playlist answers 200 (a server that publishes the lowest
 * rung first may do so before the status says ready). Every 100 ms until it
 * is playable and again once its progress reaches kNearlyDone %; every 500 ms
 * in between, when it can be neither (each status read costs the server and
 * etcd CPU on the two cores ffmpeg needs; a slower poll can only see `ready`
 * later, never earlier). Returns { readyMs, playableMs } from `t0`.
 */
async function untilReady(url, id, t0) {
  let playableMs = null;
  let progress = 0;
  let tick = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const readyMs = await waitFor(async () => {
      const slow = playableMs != null && progress < kNearlyDone;
      if (slow && tick++ % 5 !== 0) return null;
      if (playableMs == null) {
        const res = await get(`${url}/content/${id}/master.m3u8`, agent);
        if (res.status === 200) playableMs = performance.now() - t0;
      }
      const res = await get(`${url}/api/videos/${id}`, agent);
      if (res.status !== 200 && res.status !== 404) {
        throw new Error(`GET /api/videos/${id}: ${res.status} ${res.body}`);
      }
      const video = res.status === 200 ? JSON.parse(res.body) : null;
      progress = video?.progress ?? progress;
      if (video?.status === 'failed') {
        throw Object.assign(new Error(`video ${id} failed: ${video.error}`), { fatal: true });
      }
      return video?.status === 'ready' ? performance.now() - t0 : null;
    }, { timeoutMs: 1200000, intervalMs: 100, what: `video ${id} to be ready` });
    return { readyMs, playableMs: playableMs ?? readyMs };
  } finally {
    agent.destroy();
  }
}

/** One plain ffmpeg run of StreamGrid's ladder for `source` into `outDir`; ms. */
async function plainLadder(source, outDir) {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const argv = JSON.parse((await runChecked(ladderCommand, [source, outDir])).stdout);
  const res = await runChecked(argv[0], argv.slice(1), { timeoutMs: 1800000 });
  await rm(outDir, { recursive: true, force: true });
  return { ms: res.ms, argv };
}

/**
 * One unmeasured run of each side before the measured rounds. This machine is
 * a VM whose kernel hands freed memory back to the host (free page reporting):
 * the first process to fault in a few hundred MB after a quiet spell pays for
 * the host backing it again. Measured: the first ladder ffmpeg of a fresh
 * stack spent 3.15 s in the kernel against 1.0-1.4 s for each later one
 * (user time the same), most of it zeroing new pages, so whichever side ran
 * first lost about 1.5 s of a 8 s run.
 */
async function warmUp(stack, nginx, root, dir, seconds) {
  const source = await noisySource(seconds);
  const t0 = performance.now();
  const up = await nodeUpload(stack.url, source, t0);
  const times = await untilReady(stack.url, up.id, t0);
  const put = await curlPut(nginx.url, source, `warm-up-${seconds}.mp4`);
  const ff = await plainLadder(path.join(root, 'dav', `warm-up-${seconds}.mp4`),
    path.join(dir, 'ffmpeg-out'));
  await rm(path.join(root, 'dav', `warm-up-${seconds}.mp4`), { force: true });
  log(`  warm-up (${seconds} s source, not counted): ours ready ${(times.readyMs / 1000).toFixed(1)} s, ` +
    `reference PUT ${(put.ms / 1000).toFixed(1)} s + ffmpeg ${(ff.ms / 1000).toFixed(1)} s`);
  await sleep(1000);
}

export async function benchReady(stack, dir, { lengths, rounds }) {
  await mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const nginx = await startNginx(path.join(dir, 'nginx'), root);
  log(`upload -> ready (${stack.mode}): sources of ${lengths.join(', ')} s, ${rounds} round(s)`);
  const points = [];
  try {
    await warmUp(stack, nginx, root, dir, Math.min(...lengths));
    for (const seconds of lengths) {
      const source = await noisySource(seconds);
      const bytes = (await stat(source)).size;
      const runs = { ours: [], upload: [], lastByte: [], playable: [], put: [], ffmpeg: [] };
      let argv = null;
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ['ours', 'ref'] : ['ref', 'ours'];
        for (const who of order) {
          if (who === 'ours') {
            const t0 = performance.now();
            const up = await nodeUpload(stack.url, source, t0);
            const times = await untilReady(stack.url, up.id, t0);
            runs.ours.push(times.readyMs);
            runs.upload.push(up.answerMs);
            runs.lastByte.push(up.lastByteMs);
            runs.playable.push(times.playableMs);
            log(`  ${seconds} s round ${round + 1} ours: last byte ${(up.lastByteMs / 1000).toFixed(1)} s, ` +
              `answered ${(up.answerMs / 1000).toFixed(1)} s, first playable ${(times.playableMs / 1000).toFixed(1)} s, ` +
              `ready ${(times.readyMs / 1000).toFixed(1)} s`);
          } else {
            const put = await curlPut(nginx.url, source, `ready-${seconds}.mp4`);
            const ff = await plainLadder(path.join(root, 'dav', `ready-${seconds}.mp4`),
              path.join(dir, 'ffmpeg-out'));
            await rm(path.join(root, 'dav', `ready-${seconds}.mp4`), { force: true });
            argv = ff.argv;
            runs.put.push(put.ms);
            runs.ffmpeg.push(ff.ms);
            log(`  ${seconds} s round ${round + 1} reference: PUT ${(put.ms / 1000).toFixed(1)} s + ` +
              `ffmpeg ${(ff.ms / 1000).toFixed(1)} s`);
          }
          await sleep(1000);
        }
      }
      const ours = median(runs.ours);
      const ref = median(runs.put.map((p, i) => p + runs.ffmpeg[i]));
      points.push({ seconds, bytes, oursMs: ours, uploadMs: median(runs.upload),
        lastByteMs: median(runs.lastByte), playableMs: median(runs.playable),
        playableAfterLastByteMs: median(runs.playable.map((p, i) => p - runs.lastByte[i])),
        putMs: median(runs.put), ffmpegMs: median(runs.ffmpeg), refMs: ref, ratio: ratio(ours, ref),
        runs, argv });
    }
  } finally {
    await nginx.stop();
  }
  return { points };
}
