// Upload -> ready: from the first byte of POST /upload until the video's
// status is ready, against (nginx PUT of the same file + one plain ffmpeg run
// of exactly the ladder StreamGrid runs, as bench/ladder_command prints it),
// for sources of several lengths.
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { buildDir } from '../../tests/lib/streamgrid.mjs';
import { startNginx } from './nginx.mjs';
import { curlPut, curlUpload, noisySource, waitReady } from './media.mjs';
import { log, median, ratio, runChecked, sleep } from './util.mjs';

const ladderCommand = path.join(buildDir, 'bench/ladder_command');

/** One plain ffmpeg run of StreamGrid's ladder for `source` into `outDir`; ms. */
async function plainLadder(source, outDir) {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const argv = JSON.parse((await runChecked(ladderCommand, [source, outDir])).stdout);
  const res = await runChecked(argv[0], argv.slice(1), { timeoutMs: 1800000 });
  await rm(outDir, { recursive: true, force: true });
  return { ms: res.ms, argv };
}

export async function benchReady(stack, dir, { lengths, rounds }) {
  await mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const nginx = await startNginx(path.join(dir, 'nginx'), root);
  log(`upload -> ready (${stack.mode}): sources of ${lengths.join(', ')} s, ${rounds} round(s)`);
  const points = [];
  try {
    for (const seconds of lengths) {
      const source = await noisySource(seconds);
      const bytes = (await stat(source)).size;
      const runs = { ours: [], upload: [], put: [], ffmpeg: [] };
      let argv = null;
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ['ours', 'ref'] : ['ref', 'ours'];
        for (const who of order) {
          if (who === 'ours') {
            const t0 = performance.now();
            const up = await curlUpload(stack.url, source);
            await waitReady(stack.url, up.id, { intervalMs: 100 });
            runs.ours.push(performance.now() - t0);
            runs.upload.push(up.ms);
            log(`  ${seconds} s round ${round + 1} ours: answered ${(up.ms / 1000).toFixed(1)} s, ` +
              `ready ${(runs.ours.at(-1) / 1000).toFixed(1)} s`);
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
        putMs: median(runs.put), ffmpegMs: median(runs.ffmpeg), refMs: ref, ratio: ratio(ours, ref),
        runs, argv });
    }
  } finally {
    await nginx.stop();
  }
  return { points };
}
