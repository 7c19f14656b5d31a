// Ingest: POST /upload of the large noisy source (time until the HTTP answer)
// against nginx's WebDAV PUT of the same file, alternating, several rounds.
// Each upload is deleted right after its answer (which cancels its
// transcoding), so that the next measurement runs on a quiet machine.
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { startNginx } from './nginx.mjs';
import { curlPut, curlUpload, deleteVideo } from './media.mjs';
import { log, median, ratio, sleep } from './util.mjs';

export async function benchIngest(stack, source, dir, { rounds, adminHeaders }) {
  await mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const nginx = await startNginx(path.join(dir, 'nginx'), root);
  const size = (await stat(source)).size;
  log(`ingest (${stack.mode}): ${(size / 1e6).toFixed(0)} MB, ${rounds} round(s)`);
  const runs = { ours: [], nginx: [] };
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['ours', 'nginx'] : ['nginx', 'ours'];
      for (const who of order) {
        if (who === 'ours') {
          const up = await curlUpload(stack.url, source);
          runs.ours.push(up.ms);
          await deleteVideo(stack.url, up.id, adminHeaders);
        } else {
          runs.nginx.push((await curlPut(nginx.url, source, `upload-${round}.mp4`)).ms);
          await rm(path.join(root, 'dav', `upload-${round}.mp4`), { force: true });
        }
        log(`  ${stack.mode} round ${round + 1} ${who}: ${(runs[who].at(-1) / 1000).toFixed(2)} s`);
        await sleep(2000);  // let a cancelled transcode and the page cache writeback settle
      }
    }
  } finally {
    await nginx.stop();
  }
  const ours = median(runs.ours);
  const ref = median(runs.nginx);
  return { bytes: size, oursMs: ours, nginxMs: ref, ratio: ratio(ours, ref), runs };
}
