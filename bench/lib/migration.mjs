// Migration: `streamgrid-admin add` of a fourth storage node, timed until the
// migration has finished moving its share, against `cp -r` (plus sync, since
// a migration's copies are durable) of the same files on the same disk.
import { mkdir, readdir, stat, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildDir, getVideo, waitFor } from '../../tests/lib/streamgrid.mjs';
import { adminBinary } from './stacks.mjs';
import { curlUpload, noisySource } from './media.mjs';
import { cpuMsOfTree, log, ratio, runChecked, runTimed } from './util.mjs';

// Web server flags of a stack that only holds originals for the migration:
// every transcode is stopped at once (a 1 ms limit), so the video fails and
// keeps its original only, and no ffmpeg competes with the migration.
export const PRELOAD_WEB_ARGS = ['--transcode-time-factor', '0.000001', '--transcode-time-floor', '0.001'];

/**
 * Uploads the noisy 5 s 1080p original (about 70 MB) again and again until
 * at least `mb` MB are stored, each on R nodes: many files of one size, so
 * that the share a new node takes varies little between runs (with five
 * originals of 70-281 MB, one run moved a single 70 MB file, where an
 * `add`'s fixed costs are most of the time); waits until no job runs on them
 * (on a stack started with PRELOAD_WEB_ARGS they fail at once and keep their
 * original). Resolves to { videos, bytes }.
 */
export async function preloadOriginals(stack, mb) {
  const lengths = [5];
  const sources = [];
  for (const s of lengths) sources.push({ file: await noisySource(s) });
  for (const source of sources) source.bytes = (await stat(source.file)).size;
  const ids = [];
  let bytes = 0;
  for (let i = 0; bytes < mb * 1e6; i++) {
    const source = sources[i % sources.length];
    ids.push((await curlUpload(stack.url, source.file)).id);
    bytes += source.bytes;
  }
  await waitFor(async () => {
    for (const id of ids) {
      const status = (await getVideo(stack.url, id))?.status;
      if (status !== 'failed' && status !== 'ready') return false;
    }
    return true;
  }, { timeoutMs: 600000, intervalMs: 500, what: 'the preloaded videos\' jobs to end' });
  log(`migration: preloaded ${ids.length} originals, ${(bytes / 1e6).toFixed(1)} MB`);
  return { videos: ids.length, bytes };
}

// Milliseconds since the epoch of a web server log line's timestamp
// ("[2026-12-05 06:25:01.538] ..."; only differences between lines are used).
function stampMs(line) {
  const m = /^\[(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\]/.exec(line);
  return m ? Date.parse(`${m[1]}T${m[2]}Z`) : NaN;
}

// The phases of the last migration from the web server's log (info level):
// copy (started -> every moved file copied: drain wait, listings, copies,
// progress records) and cleanup (flip -> done: drain wait, surplus deletes).
export function migrationPhases(text) {
  const lines = text.split('\n');
  const last = (re) => { for (let i = lines.length - 1; i >= 0; i--) if (re.test(lines[i])) return stampMs(lines[i]); return NaN; };
  const started = last(/migration started:/);
  const copied = last(/migration: every moved file is copied/);
  const done = last(/migration done:/);
  // The runner's own phase timings (the last of each line).
  const ms = (re) => { for (let i = lines.length - 1; i >= 0; i--) { const m = re.exec(lines[i]); if (m) return Number(m[1]); } return NaN; };
  return { copyMs: copied - started, cleanupMs: done - copied,
    drainMs: ms(/migration: earlier writes drained in (\d+) ms/),
    batchesMs: ms(/migration: batches copied and recorded in (\d+) ms/),
    flipMs: ms(/migration: flip recorded in (\d+) ms/),
    cleanupDrainMs: ms(/migration: writes under the old placement drained in (\d+) ms/),
    deletesMs: ms(/migration: cleanup took (\d+) ms/) };
}

// Where the node-to-node copies' time went, summed over the nodes' logs (at
// info level): on the destinations, waiting for the source, storing, commit;
// on the sources, reading (and verifying) and sending.
export function pullTimes(logs) {
  const sum = { pulls: 0, pullMs: 0, waitingMs: 0, storingMs: 0, commitMs: 0, sends: 0, sendMs: 0, readingMs: 0, sendingMs: 0, maxPullMs: 0 };
  for (const text of logs) {
    for (const m of text.matchAll(/pulled \S+ from \S+: \d+ bytes in (\d+) ms \(waiting for the source (\d+) ms, storing (\d+) ms, commit (\d+) ms\)/g)) {
      sum.pulls++;
      sum.pullMs += Number(m[1]);
      sum.maxPullMs = Math.max(sum.maxPullMs, Number(m[1]));
      sum.waitingMs += Number(m[2]);
      sum.storingMs += Number(m[3]);
      sum.commitMs += Number(m[4]);
    }
    for (const m of text.matchAll(/sent \S+ for a copy: \d+ bytes in (\d+) ms \(reading (\d+) ms, sending (\d+) ms\)/g)) {
      sum.sends++;
      sum.sendMs += Number(m[1]);
      sum.readingMs += Number(m[2]);
      sum.sendingMs += Number(m[3]);
    }
  }
  return sum;
}

async function treeBytes(dir) {
  let bytes = 0;
  let files = 0;
  let entries;
  try { entries = await readdir(dir, { withFileTypes: true }); } catch { return { bytes, files }; }
  for (const e of entries) {
    if (e.name.startsWith('.') || e.name.includes('.tmp')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = await treeBytes(p);
      bytes += sub.bytes;
      files += sub.files;
    } else if (e.isFile()) {
      bytes += (await stat(p)).size;
      files++;
    }
  }
  return { bytes, files };
}

export async function benchMigration(stack, dir) {
  const node = await stack.addNode();
  log(`migration: streamgrid-admin add ${node.address}`);
  const pids = () => [stack.web.process.pid, ...stack.nodes.map((n) => n.process.pid)];
  const cpuBefore = await cpuMsOfTree(pids());
  // The new node's share (it receives, checks and stores every byte; the
  // others read and send), for the per-byte work of each side.
  const destinationBefore = await cpuMsOfTree([node.process.pid]);
  const webBefore = await cpuMsOfTree([stack.web.process.pid]);
  const add = await runTimed(adminBinary, stack.adminArgs('add', [node.address]), { timeoutMs: 900000 });
  if (add.code !== 0) throw new Error(`streamgrid-admin add: exit ${add.code}\n${add.stderr}${add.stdout}`);
  // CPU of the web server and every node during the add: unlike its time,
  // it hardly depends on what else runs on the machine.
  const cpuMs = (await cpuMsOfTree(pids())) - cpuBefore;
  const destinationCpuMs = (await cpuMsOfTree([node.process.pid])) - destinationBefore;
  const webCpuMs = (await cpuMsOfTree([stack.web.process.pid])) - webBefore;
  const sourcesCpuMs = cpuMs - destinationCpuMs - webCpuMs;
  const phases = migrationPhases(stack.web.log());
  const pulls = pullTimes(stack.nodes.map((n) => n.log()));
  const content = path.join(node.dataDir, 'data', 'content');
  const moved = await treeBytes(content);
  if (moved.files === 0) {
    // Each preloaded file has about even odds of a copy on the new node, so
    // an add that moved none is not a measurement (one run of ~40 did so,
    // with no log kept): keep the logs to find out why.
    const kept = path.join(buildDir, 'bench-report', 'migration-moved-nothing');
    await mkdir(kept, { recursive: true });
    await writeFile(path.join(kept, 'web.log'), stack.web.log());
    for (const [i, n] of stack.nodes.entries()) await writeFile(path.join(kept, `node-${i}.log`), n.log());
    await writeFile(path.join(kept, 'admin-add.txt'), `${add.stdout}\n${add.stderr}`);
    throw new Error(`streamgrid-admin add moved no file to the new node (logs in ${kept})`);
  }
  const copy = path.join(dir, 'cp-copy');
  await rm(copy, { recursive: true, force: true });
  await runChecked('sync', []);
  const cp = await runChecked('cp', ['-r', content, copy]);
  const sync = await runChecked('sync', ['-f', copy]);
  await rm(copy, { recursive: true, force: true });
  const refMs = cp.ms + sync.ms;
  const result = { files: moved.files, bytes: moved.bytes, addMs: add.ms, cpMs: cp.ms, syncMs: sync.ms,
    refMs, throughputRatio: ratio(refMs, add.ms), cpuMs, destinationCpuMs, sourcesCpuMs, webCpuMs, ...phases, pulls, output: add.stdout.trim().slice(-500) };
  log(`  moved ${moved.files} files, ${(moved.bytes / 1e6).toFixed(1)} MB in ${(add.ms / 1000).toFixed(2)} s ` +
    `(copy phase ${(phases.copyMs / 1000).toFixed(2)} s, cleanup ${(phases.cleanupMs / 1000).toFixed(2)} s, ` +
    `CPU of web + nodes ${(cpuMs / 1000).toFixed(2)} s); cp -r + sync ${(refMs / 1000).toFixed(2)} s`);
  const perMb = (ms) => (moved.bytes > 0 ? (ms / (moved.bytes / 1e6)).toFixed(2) : '-');
  log(`  CPU per MB moved: ${perMb(cpuMs)} ms (new node ${perMb(destinationCpuMs)}, the other nodes ` +
    `${perMb(sourcesCpuMs)}, web server ${perMb(webCpuMs)})`);
  log(`  phases: drain ${phases.drainMs} ms, batches ${phases.batchesMs} ms, flip ${phases.flipMs} ms, ` +
    `cleanup drain ${phases.cleanupDrainMs} ms, deletes ${phases.deletesMs} ms`);
  if (pulls.pulls) {
    log(`  ${pulls.pulls} pulls, ${pulls.pullMs} ms in all (longest ${pulls.maxPullMs} ms): waiting for the source ` +
      `${pulls.waitingMs} ms, storing ${pulls.storingMs} ms, commit ${pulls.commitMs} ms; ${pulls.sends} sends: ` +
      `reading ${pulls.readingMs} ms, sending ${pulls.sendingMs} ms`);
  }
  return result;
}
