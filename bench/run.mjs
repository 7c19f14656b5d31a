#!/usr/bin/env node
// ./dev bench: every benchmark of issue 10 with its reference measured in the
// same run (nginx for serving and PUT, plain ffmpeg for the ladder, cp for
// migration), alternating A/B over several rounds; writes the figures to
// docs/bench/results.json and the report to docs/BENCHMARKS.md (+ PNG plots).
// See docs/benchmarking.md.
//
//   node bench/run.mjs [--quick] [--rounds N] [--ready-rounds N] [--seconds S]
//                      [--only serving,ingest,ready,memory,ring,migration]
//                      [--modes single,cluster] [--ready-lengths 5,10,20]
//                      [--baseline NAME] [--out FILE] [--no-report] [--keep]
//                      [--migration-mb N]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { repoRoot, buildDir } from '../tests/lib/streamgrid.mjs';
import { log, machineInfo, memoryOf, stopEverything } from './lib/util.mjs';
import { startStack } from './lib/stacks.mjs';
import { noisySource, servingVideos } from './lib/media.mjs';
import { benchServing } from './lib/serving.mjs';
import { benchIngest } from './lib/ingest.mjs';
import { benchReady } from './lib/ready.mjs';
import { benchMemory } from './lib/memory.mjs';
import { benchRing } from './lib/ring.mjs';
import { benchMigration, preloadOriginals, PRELOAD_WEB_ARGS } from './lib/migration.mjs';
import { writeScript } from './lib/wrk.mjs';
import { writeReport } from './report.mjs';

const ALL = ['serving', 'ingest', 'ready', 'memory', 'ring', 'migration'];

function usage(message) {
  if (message) process.stderr.write(`${message}\n`);
  process.stderr.write(`usage: ./dev bench [--quick] [--rounds N] [--ready-rounds N] [--seconds S]
       [--only ${ALL.join(',')}] [--modes single,cluster] [--ready-lengths 5,10,20]
       [--baseline NAME] [--out FILE] [--no-report] [--keep] [--wait-quiet] [--docs]
       [--migration-mb N]
  --quick          1 round, connections 64 and 1024, 5 s per wrk run, ready for 5 and 10 s sources
  --rounds N       rounds of each A/B comparison (default 3)
  --ready-rounds N rounds of upload -> ready per source length (default 3, the median counts; --quick 1)
  --seconds S      length of each wrk run (default 10)
  --only LIST      run only these benchmarks
  --modes LIST     StreamGrid set-ups to run (default single,cluster; ready runs in cluster when listed)
  --baseline NAME  write the figures to docs/bench/baseline-NAME.json (the "before" of the report)
                   instead of docs/bench/results.json, and leave docs/BENCHMARKS.md alone
  --out FILE       write the figures to FILE instead
  --no-report      do not write docs/BENCHMARKS.md and the plots
  --keep           keep the scratch directory (process data and logs)
  --docs           write docs/bench/results.json and docs/BENCHMARKS.md even for a partial run
                   (--quick, --only, --modes), which otherwise writes them to build/bench-report/
  --migration-mb N run the migration benchmark on a cluster of its own holding N MB of originals
                   (noisy 1080p uploads, not transcoded); default 600; 0 moves what the
                   cluster of the other steps holds at the end instead
  --wait-quiet     first wait (up to 10 minutes) until the 1-minute load average is below a
                   quarter of the cores, so that the figures are not measured beside other work
`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { quick: false, rounds: 3, readyRounds: 3, seconds: 10, only: ALL,
    modes: ['single', 'cluster'], readyLengths: [5, 10, 20], baseline: null, out: null,
    report: true, keep: false, waitQuiet: false, docs: false, levels: [64, 256, 1024],
    migrationMb: null };
  const list = (v) => String(v).split(',').map((s) => s.trim()).filter(Boolean);
  const num = (v, name) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) usage(`${name} takes a positive number`);
    return n;
  };
  let explicit = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => { if (i + 1 >= argv.length) usage(`${a} takes a value`); return argv[++i]; };
    switch (a) {
      case '--quick': o.quick = true; break;
      case '--rounds': o.rounds = num(value(), a); explicit.rounds = true; break;
      case '--ready-rounds': o.readyRounds = num(value(), a); explicit.readyRounds = true; break;
      case '--seconds': o.seconds = num(value(), a); explicit.seconds = true; break;
      case '--only': o.only = list(value()); break;
      case '--modes': o.modes = list(value()); break;
      case '--ready-lengths': o.readyLengths = list(value()).map((v) => num(v, a)); explicit.lengths = true; break;
      case '--baseline': o.baseline = value(); break;
      case '--out': o.out = value(); break;
      case '--no-report': o.report = false; break;
      case '--keep': o.keep = true; break;
      case '--wait-quiet': o.waitQuiet = true; break;
      case '--docs': o.docs = true; break;
      case '--migration-mb': o.migrationMb = Number(value()); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  for (const b of o.only) if (!ALL.includes(b)) usage(`unknown benchmark ${b}`);
  // The ready step leaves too little on the cluster for a migration to mean
  // anything (27 MB moved in one full run, mostly fixed costs): by default the
  // migration always gets a cluster and a data set of its own.
  if (o.migrationMb === null) o.migrationMb = 600;
  if (!Number.isFinite(o.migrationMb) || o.migrationMb < 0) usage('--migration-mb takes a number of MB');
  for (const m of o.modes) if (!['single', 'cluster'].includes(m)) usage(`unknown mode ${m}`);
  if (o.baseline && !/^[\w-]+$/.test(o.baseline)) usage('--baseline takes a name of letters, digits, - and _');
  if (o.quick) {
    if (!explicit.rounds) o.rounds = 1;
    if (!explicit.seconds) o.seconds = 5;
    if (!explicit.lengths) o.readyLengths = [5, 10];
    if (!explicit.readyRounds) o.readyRounds = 1;
    o.levels = [64, 1024];
  }
  // Only a full run (or --docs) replaces the committed figures and report, so
  // that development runs cannot be committed by mistake.
  o.full = !o.quick && ALL.every((b) => o.only.includes(b)) && o.modes.length === 2;
  o.docs = o.docs || o.full;
  return o;
}

let removeScratch = async () => {};
async function cleanupAll() {
  await stopEverything();
  await removeScratch().catch(() => {});
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    log(`${signal}: stopping everything started`);
    await cleanupAll();
    process.exit(130);
  });
}

/** Waits up to `maxMs` for the 1-minute load average to fall below a quarter of the cores. */
async function waitQuiet(maxMs = 600000) {
  const limit = cpus().length * 0.25;
  const deadline = Date.now() + maxMs;
  let said = 0;
  while (loadavg()[0] >= limit && Date.now() < deadline) {
    if (Date.now() - said > 30000) {
      log(`waiting for a quiet machine: load ${loadavg()[0].toFixed(2)}, want < ${limit}`);
      said = Date.now();
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  if (loadavg()[0] >= limit) log(`still busy after ${maxMs / 60000} minutes (load ${loadavg()[0].toFixed(2)}): running anyway`);
}

/** Exits with a clear message when a tool the chosen benchmarks run is missing. */
function checkTools(o) {
  const need = new Set(['ffmpeg', 'ffprobe']);
  const want = (b) => o.only.includes(b);
  if (want('serving') || want('memory')) need.add('wrk');
  if (want('serving') || want('ingest') || want('ready')) need.add('nginx');
  if (want('ingest')) need.add('curl');
  if (o.report && !o.baseline && !o.out) need.add('gnuplot');
  const missing = [...need].filter((tool) => {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }); return false; } catch { return true; }
  });
  if (missing.length) {
    log(`missing: ${missing.join(', ')} (./dev bench installs wrk, nginx-light, gnuplot-nox and curl)`);
    process.exit(2);
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const want = (b) => o.only.includes(b);
  checkTools(o);
  if (o.waitQuiet) await waitQuiet();
  const results = {
    date: new Date().toISOString(),
    commit: (() => {
      try { return execFileSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']).toString().trim(); } catch { return null; }
    })(),
    machine: await machineInfo(),
    options: { quick: o.quick, rounds: o.rounds, readyRounds: o.readyRounds, seconds: o.seconds,
      levels: o.levels, only: o.only, modes: o.modes, readyLengths: o.readyLengths },
    serving: {}, ingest: {}, memory: {}, ready: null, ring: null, migration: null, errors: [],
    loads: {},  // load average as each benchmark started
  };
  log(`machine: ${results.machine.nproc} cores, ${results.machine.cpu}, load ${results.machine.loadavg.join(' ')}`);
  const scratch = await mkdtemp(path.join(tmpdir(), 'streamgrid-bench-'));
  if (!o.keep) removeScratch = () => rm(scratch, { recursive: true, force: true });
  log(`scratch directory ${scratch}`);

  // A benchmark that fails is recorded and the others still run.
  const attempt = async (name, fn) => {
    results.loads[name] = loadavg().map((x) => Math.round(x * 100) / 100);
    try {
      return await fn();
    } catch (e) {
      log(`${name} failed: ${e.stack || e}`);
      results.errors.push(`${name}: ${String(e.message || e).slice(0, 1000)}`);
      return null;
    }
  };

  if (want('ring')) results.ring = await attempt('ring', () => benchRing(scratch));
  if (want('ingest') || want('ready') || (want('migration') && o.migrationMb > 0)) {
    // Generated before any stack starts, so that no timing shares the CPU with it.
    await noisySource(20);
    for (const s of o.readyLengths) await noisySource(s);
  }
  const readyMode = o.modes.includes('cluster') ? 'cluster' : 'single';
  // A migration of preloaded originals runs on a cluster of its own.
  const ownMigration = want('migration') && o.migrationMb > 0 && o.modes.includes('cluster');
  for (const mode of o.modes) {
    const needs = ['serving', 'ingest', 'memory'].some(want) || (want('ready') && mode === readyMode) ||
      (want('migration') && mode === 'cluster' && !ownMigration);
    if (!needs) continue;
    const dir = path.join(scratch, mode);
    const stack = await attempt(`${mode} start`, () => startStack(mode, dir));
    if (!stack) continue;
    try {
      let paths = null;
      if (want('serving') || want('memory') || (want('migration') && mode === 'cluster' && !ownMigration)) {
        paths = await attempt(`${mode} videos`, () => servingVideos(stack.url));
      }
      if (paths && want('serving')) {
        results.serving[mode] = await attempt(`serving ${mode}`, () => benchServing(stack, paths,
          path.join(dir, 'serving'), { levels: o.levels, rounds: o.rounds, seconds: o.seconds }));
      }
      if (paths && want('memory')) {
        const script = await writeScript(dir, paths);
        results.memory[mode] = await attempt(`memory ${mode}`, () => benchMemory(stack, script,
          { seconds: Math.max(10, o.seconds * 2), servedBytes: results.serving[mode]?.bytes ?? null }));
      }
      if (want('ingest')) {
        results.ingest[mode] = await attempt(`ingest ${mode}`, async () => benchIngest(stack,
          await noisySource(20), path.join(dir, 'ingest'), { rounds: o.rounds }));
      }
      if (want('ready') && mode === readyMode) {
        results.ready = await attempt('ready', async () => ({ mode,
          ...(await benchReady(stack, path.join(dir, 'ready'), { lengths: o.readyLengths, rounds: o.readyRounds })) }));
      }
      if (want('migration') && mode === 'cluster' && !ownMigration) {
        results.migration = await attempt('migration', () => benchMigration(stack, dir));
      }
      // Peaks over the whole run of this mode (ingest and migration included).
      const pids = stack.pids();
      const hwm = async (pid) => ((await memoryOf(pid))?.hwmKiB ?? NaN) / 1024;
      results.peaks = results.peaks || {};
      results.peaks[mode] = { webHwmMiB: await hwm(pids.web),
        storageHwmMiB: pids.storage.length ? Math.max(...(await Promise.all(pids.storage.map(hwm)))) : null };
    } finally {
      await stack.stop();
    }
    if (o.keep) {  // the last output of each process, its stop included
      await mkdir(path.join(dir, 'logs'), { recursive: true });
      await writeFile(path.join(dir, 'logs', 'web.log'), stack.web.log());
      for (const [i, n] of stack.nodes.entries()) await writeFile(path.join(dir, 'logs', `n${i + 1}.log`), n.log());
    }
    // The web server logs its content cache's figures as it stops (when it has one).
    const cache = /content cache: (\d+) bytes in (\d+) files, (\d+) hits, (\d+) misses/.exec(stack.web.log());
    if (cache) {
      results.cache = results.cache || {};
      results.cache[mode] = { bytes: Number(cache[1]), files: Number(cache[2]), hits: Number(cache[3]),
        misses: Number(cache[4]) };
    }
  }
  if (ownMigration) {
    const dir = path.join(scratch, 'migration');
    const stack = await attempt('migration start', () => startStack('cluster', dir, { webArgs: PRELOAD_WEB_ARGS, nodeLogLevel: 'info' }));
    if (stack) {
      try {
        results.migration = await attempt('migration', async () => {
          const preloaded = await preloadOriginals(stack, o.migrationMb);
          return { preloaded, ...(await benchMigration(stack, dir)) };
        });
      } finally {
        await stack.stop();
      }
      if (o.keep) {
        await mkdir(path.join(dir, 'logs'), { recursive: true });
        await writeFile(path.join(dir, 'logs', 'web.log'), stack.web.log());
        for (const [i, n] of stack.nodes.entries()) await writeFile(path.join(dir, 'logs', `n${i + 1}.log`), n.log());
      }
    }
  }
  results.finished = new Date().toISOString();

  const docsDir = o.docs ? path.join(repoRoot, 'docs') : path.join(buildDir, 'bench-report');
  const benchDocs = path.join(docsDir, 'bench');
  await mkdir(benchDocs, { recursive: true });
  const out = o.out || (o.baseline ? path.join(repoRoot, 'docs', 'bench', `baseline-${o.baseline}.json`)
    : path.join(benchDocs, 'results.json'));
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(results, null, 2) + '\n');
  if (!o.out) {  // every run is also kept under build/bench-results/ for comparisons
    const history = path.join(buildDir, 'bench-results');
    await mkdir(history, { recursive: true });
    await writeFile(path.join(history, `${results.date.replace(/[:.]/g, '-')}.json`), JSON.stringify(results, null, 2) + '\n');
  }
  log(`figures written to ${path.relative(repoRoot, out)}`);
  if (o.report && !o.baseline && !o.out) {
    const doc = await writeReport(results, { docsDir, baselineDir: path.join(repoRoot, 'docs', 'bench') });
    log(`report written to ${path.relative(repoRoot, doc)}`);
  }
  await cleanupAll();
  if (results.errors.length) {
    log(`${results.errors.length} benchmark(s) failed:\n  ${results.errors.join('\n  ')}`);
    process.exitCode = 1;
  }
}

main().catch(async (e) => {
  log(`failed: ${e.stack || e}`);
  await cleanupAll();
  process.exit(1);
});
