// Serving: wrk over the same segment and manifest paths of four ready videos,
// StreamGrid against nginx serving copies of the same files from disk
// (sendfile), alternating which goes first, several rounds, medians.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startNginx } from './nginx.mjs';
import { writeScript, runWrk } from './wrk.mjs';
import { cpuMsOfTree, log, median, ratio, sleep } from './util.mjs';

/** Copies each path's bytes, as StreamGrid serves them, under `root` at the same path. */
async function mirror(url, paths, root) {
  let bytes = 0;
  for (const p of paths) {
    const res = await fetch(url + p, { signal: AbortSignal.timeout(30000) });
    if (!res.ok) throw new Error(`GET ${p}: ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    bytes += body.length;
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), body);
  }
  return bytes;
}

/**
 * Runs the serving benchmark against `stack` (whose videos' paths are
 * `paths`); returns { files, bytes, levels: [{ connections, ours: {rps,
 * p99Ms, errors, runs}, nginx: {...}, rpsRatio, p99Ratio }] }.
 */
export async function benchServing(stack, paths, dir, { levels, rounds, seconds }) {
  await mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const bytes = await mirror(stack.url, paths, root);
  const nginx = await startNginx(path.join(dir, 'nginx'), root);
  const script = await writeScript(dir, paths);
  log(`serving (${stack.mode}): ${paths.length} files, ${(bytes / 1e6).toFixed(1)} MB; ` +
    `levels ${levels.join('/')}, ${rounds} round(s) of ${seconds} s each`);
  try {
    // Warm both (page cache, StreamGrid's own caches, connections) before measuring.
    await runWrk(stack.url, script, { connections: 64, seconds: 2 });
    await runWrk(nginx.url, script, { connections: 64, seconds: 2 });
    const result = { files: paths.length, bytes, levels: [] };
    const pids = stack.pids();
    for (const connections of levels) {
      const runs = { ours: [], nginx: [] };
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ['ours', 'nginx'] : ['nginx', 'ours'];
        for (const who of order) {
          // CPU of the server side only (web server and storage nodes, or
          // nginx's master and workers), per 1000 answered requests.
          const tree = who === 'ours' ? [pids.web, ...pids.storage] : [nginx.pid];
          const cpu0 = await cpuMsOfTree(tree);
          const r = await runWrk(who === 'ours' ? stack.url : nginx.url, script,
            { connections, seconds });
          r.cpuMsPer1k = r.requests > 0 ? ((await cpuMsOfTree(tree)) - cpu0) / r.requests * 1000 : null;
          runs[who].push(r);
          log(`  ${stack.mode} c=${connections} round ${round + 1} ${who}: ${r.rps?.toFixed(0)} req/s, ` +
            `p99 ${r.p99Ms?.toFixed(1)} ms, errors ${r.errors}, CPU ${r.cpuMsPer1k?.toFixed(0)} ms/1k req`);
          await sleep(500);
        }
      }
      const summary = (list) => ({
        rps: median(list.map((r) => r.rps)), p99Ms: median(list.map((r) => r.p99Ms)),
        p50Ms: median(list.map((r) => r.p50Ms)), cpuMsPer1k: median(list.map((r) => r.cpuMsPer1k)),
        errors: list.reduce((a, r) => a + r.errors, 0),
        runs: list.map((r) => ({ rps: r.rps, p99Ms: r.p99Ms, errors: r.errors, cpuMsPer1k: r.cpuMsPer1k,
          detail: r.socketDetail })),
      });
      const ours = summary(runs.ours);
      const ref = summary(runs.nginx);
      result.levels.push({ connections, ours, nginx: ref, rpsRatio: ratio(ours.rps, ref.rps),
        p99Ratio: ratio(ours.p99Ms, ref.p99Ms) });
    }
    return result;
  } finally {
    await nginx.stop();
  }
}
