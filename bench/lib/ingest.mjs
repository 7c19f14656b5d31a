// Ingest: POST /upload of the large noisy source (time until the HTTP answer)
// against nginx's WebDAV PUT of the same file, alternating, several rounds.
// Each upload is deleted right after its answer (which cancels its
// transcoding), so that the next measurement runs on a quiet machine.
//
// nginx's PUT only writes to the page cache, while an upload is answered once
// its copies are durable. So a second, durable reference is measured beside
// it: the disk floor, `copies` files of the same bytes written in parallel on
// the same disk with `dd conv=fsync` (1 in --single, R = 2 in cluster).
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { startNginx } from './nginx.mjs';
import { curlPut, curlUpload, deleteVideo } from './media.mjs';
import { log, median, ratio, runTimed, sleep } from './util.mjs';

/** Writes `copies` durable copies of `source` into `dir` in parallel; ms until all are fsynced. */
async function durableCopies(source, dir, copies) {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: copies }, (_, i) => runTimed('dd',
    [`if=${source}`, `of=${path.join(dir, `floor-${i}`)}`, 'bs=1M', 'conv=fsync', 'status=none'])));
  const ms = performance.now() - t0;
  for (const r of results) if (r.code !== 0) throw new Error(`dd: exit ${r.code} ${r.stderr}`);
  await Promise.all(Array.from({ length: copies }, (_, i) =>
    rm(path.join(dir, `floor-${i}`), { force: true })));
  return ms;
}

/**
 * CPU milliseconds used so far by each of `pids` alone (not their children:
 * the web server's ffprobe and ffmpeg are the transcoding's, not the write
 * path's), from /proc/PID/stat; 0 for a pid that is gone.
 */
async function cpuMsOf(pids) {
  const ticksPerSecond = 100;  // USER_HZ on Linux
  let ticks = 0;
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    if (!text) continue;
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    ticks += Number(rest[11]) + Number(rest[12]);  // utime + stime
  }
  return (ticks * 1000) / ticksPerSecond;
}

export async function benchIngest(stack, source, dir, { rounds, adminHeaders }) {
  const copies = stack.mode === 'cluster' ? 2 : 1;  // the stacks' replication factor
  await mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const nginx = await startNginx(path.join(dir, 'nginx'), root);
  const size = (await stat(source)).size;
  log(`ingest (${stack.mode}): ${(size / 1e6).toFixed(0)} MB, ${rounds} round(s)`);
  const runs = { ours: [], nginx: [], floor: [], webCpuMs: [], nodesCpuMs: [] };
  // CPU per upload of the web server and of the storage nodes: unlike the
  // times, it hardly depends on what else runs on the machine.
  const webPids = () => [stack.web.process.pid];
  const nodePids = () => (stack.nodes ?? []).map((n) => n.process.pid);
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['ours', 'nginx', 'floor'] : ['floor', 'nginx', 'ours'];
      for (const who of order) {
        // Every measurement starts with no dirty pages: the bench's previous
        // steps (a 2 GiB upload, the other side's file) would otherwise be
        // written back during it and slow whichever side comes next.
        await runTimed('sync', []);
        if (who === 'ours') {
          const web0 = await cpuMsOf(webPids());
          const nodes0 = await cpuMsOf(nodePids());
          const up = await curlUpload(stack.url, source);
          runs.webCpuMs.push((await cpuMsOf(webPids())) - web0);
          runs.nodesCpuMs.push((await cpuMsOf(nodePids())) - nodes0);
          runs.ours.push(up.ms);
          await deleteVideo(stack.url, up.id, adminHeaders);
        } else if (who === 'floor') {
          runs.floor.push(await durableCopies(source, dir, copies));
        } else {
          runs.nginx.push((await curlPut(nginx.url, source, `upload-${round}.mp4`)).ms);
          await rm(path.join(root, 'dav', `upload-${round}.mp4`), { force: true });
        }
        log(`  ${stack.mode} round ${round + 1} ${who}: ${(runs[who].at(-1) / 1000).toFixed(2)} s` +
          (who === 'ours' ? ` (CPU: web ${(runs.webCpuMs.at(-1) / 1000).toFixed(2)} s, ` +
            `nodes ${(runs.nodesCpuMs.at(-1) / 1000).toFixed(2)} s)` : ''));
        await sleep(2000);  // let a cancelled transcode and the page cache writeback settle
      }
    }
  } finally {
    await nginx.stop();
  }
  const ours = median(runs.ours);
  const ref = median(runs.nginx);
  const floor = median(runs.floor);
  return { bytes: size, oursMs: ours, nginxMs: ref, ratio: ratio(ours, ref), runs,
    copies, floorMs: floor, floorRatio: ratio(ours, floor),
    webCpuMs: median(runs.webCpuMs), nodesCpuMs: median(runs.nodesCpuMs) };
}
