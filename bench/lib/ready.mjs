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
import { log, median, ratio, runChecked, sleep } from './util.mjs';

const ladderCommand = path.join(buildDir, 'bench/ladder_command');

/**
 * GET `url` over `agent` (kept-alive connections) with `headers`; { status,
 * etag, body } within `timeoutMs`. The poll below runs on the same two cores
 * as the server and ffmpeg: node:http costs it a fraction of the CPU fetch()
 * does per request (a client on another machine would cost the server's
 * cores nothing).
 */
function get(url, agent, headers, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, etag: res.headers.etag,
        body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Follows the video's record until it is ready, by long polls (If-None-Match
 * with the last answer's ETag and "Prefer: wait=30": the server answers as
 * soon as the record changes, so each change is seen when it is made, for
 * one request per change). Also notes when it first became playable (the
 * record says so once the HLS master playlist is stored; a server that
 * publishes the lowest rung first does so before it is ready). Returns
 * { readyMs, playableMs } from `t0`.
 */
async function untilReady(url, id, t0) {
  let playableMs = null;
  let etag = null;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const deadline = performance.now() + 1200000;
  try {
    while (performance.now() < deadline) {
      const headers = etag ? { 'If-None-Match': etag, Prefer: 'wait=30' } : {};
      const asked = performance.now();
      const res = await get(`${url}/api/videos/${id}`, agent, headers, 60000);
      if (res.status === 304) {
        // One that did not wait (it should): not asked again in a tight loop.
        if (performance.now() - asked < 1000) await sleep(100);
        continue;
      }
      if (res.status !== 200) throw new Error(`GET /api/videos/${id}: ${res.status} ${res.body}`);
      etag = res.etag;
      const video = JSON.parse(res.body);
      if (video.status === 'failed') throw new Error(`video ${id} failed: ${video.error}`);
      if (video.playable && playableMs == null) playableMs = performance.now() - t0;
      if (video.status === 'ready') {
        const readyMs = performance.now() - t0;
        return { readyMs, playableMs: playableMs ?? readyMs };
      }
    }
    throw new Error(`video ${id} was not ready within 20 minutes`);
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

/** Our side once: upload `source`, follow it until ready; { up, times }. */
async function runOurs(stack, source) {
  const t0 = performance.now();
  const up = await nodeUpload(stack.url, source, t0);
  return { up, times: await untilReady(stack.url, up.id, t0) };
}

/**
 * The reference once: nginx PUT of `source` as `name`, then the plain ladder
 * run on that copy, which is removed after; { put, ff }.
 */
async function runReference(nginx, root, dir, source, name) {
  const put = await curlPut(nginx.url, source, name);
  const ff = await plainLadder(path.join(root, 'dav', name), path.join(dir, 'ffmpeg-out'));
  await rm(path.join(root, 'dav', name), { force: true });
  return { put, ff };
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
  const { times } = await runOurs(stack, source);
  const { put, ff } = await runReference(nginx, root, dir, source, `warm-up-${seconds}.mp4`);
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
            const { up, times } = await runOurs(stack, source);
            runs.ours.push(times.readyMs);
            runs.upload.push(up.answerMs);
            runs.lastByte.push(up.lastByteMs);
            runs.playable.push(times.playableMs);
            log(`  ${seconds} s round ${round + 1} ours: last byte ${(up.lastByteMs / 1000).toFixed(1)} s, ` +
              `answered ${(up.answerMs / 1000).toFixed(1)} s, first playable ${(times.playableMs / 1000).toFixed(1)} s, ` +
              `ready ${(times.readyMs / 1000).toFixed(1)} s`);
          } else {
            const { put, ff } = await runReference(nginx, root, dir, source, `ready-${seconds}.mp4`);
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
