#!/usr/bin/env node
// The chaos run (`./dev chaos [--duration S] [--seed N]`): a real cluster
// (three etcd members, four storage nodes with R = 2, two web servers) under
// continuous streaming and uploads while a schedule of faults is injected:
// storage nodes killed and restarted, a node's disk wiped, files corrupted on
// disk, the etcd leader killed, a web server killed, a node added and one
// removed. At the end it waits (bounded) for repair to converge, verifies
// every acknowledged upload and every file's copies, prints a summary and
// writes docs/RELIABILITY.md. Loopback and ephemeral ports only; every wait
// is bounded and every process started is killed at the end, even on error.
//
// Exit status: 0 when every goal is met, 1 when some goal is missed (the
// report says which), 2 when the run itself could not be carried out.
import os from 'node:os';
import path from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import {
  makeTestVideo, tempDir, waitFor, repoRoot, getVideo, uploadFile, waitForStatus, playerFiles,
} from '../lib/streamgrid.mjs';
import { ChaosCluster, sha256 } from './cluster.mjs';
import { Stats, Viewers, Uploader, fileSha256 } from './workload.mjs';
import { CORRUPTION_KINDS, seededRandom, copiesOn, corrupt } from './faults.mjs';
import { writeReport, printSummary } from './report.mjs';

const usage = `usage: ./dev chaos [--duration S] [--seed N] [--converge-timeout S] [--content-cache BYTES] [--report FILE|-] [--keep]
  --duration S          seconds of faults under load (default 360)
  --seed N              seed of the fault schedule's choices (default: random, printed)
  --converge-timeout S  seconds to wait for repair to converge at the end (default 240)
  --content-cache BYTES the web servers' content cache (default 0: off, so that viewers' reads reach
                        the storage nodes and their damaged copies, which is what the run is about)
  --report FILE         where to write the report (default docs/RELIABILITY.md; - for none)
  --keep                keep the scratch directory (data dirs, logs/ with each process's last output)`;

function parseArgs(argv) {
  const opts = { duration: 360, seed: Math.floor(Math.random() * 2 ** 31), convergeTimeout: 240, contentCache: 0,
    report: path.join(repoRoot, 'docs/RELIABILITY.md'), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) { console.error(usage); process.exit(2); }
      return v;
    };
    if (a === '--duration') opts.duration = num();
    else if (a === '--seed') opts.seed = Math.floor(num());
    else if (a === '--converge-timeout') opts.convergeTimeout = num();
    else if (a === '--content-cache') opts.contentCache = Math.floor(num());
    else if (a === '--report') opts.report = argv[++i];
    else if (a === '--keep') opts.keep = true;
    else { console.error(usage); process.exit(a === '--help' || a === '-h' ? 0 : 2); }
  }
  if (opts.duration < 30) { console.error('--duration must be at least 30 s'); process.exit(2); }
  return opts;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const events = [];  // { t, what }: the timeline, for the report
  const log = (what) => {
    const line = `[+${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${what}`;
    console.log(line);
    events.push({ t: Date.now(), what });
  };
  const rng = seededRandom(opts.seed);
  const scratch = await tempDir('streamgrid-chaos-');
  const cluster = new ChaosCluster(scratch, log, { contentCacheBytes: opts.contentCache });
  const run = {
    opts, t0, events, scratch, cluster, stats: new Stats(), corruptions: [], restores: [],
    migrations: [], errors: [], machine: machineFacts(), loadStart: os.loadavg(),
  };

  // Whatever happens, every process goes: on a signal, on an error, and when
  // the run takes far longer than it should (a wedged wait somewhere).
  let cleaning = null;
  const cleanup = () => {
    cleaning ??= (async () => {
      if (opts.keep) await cluster.saveLogs(path.join(scratch, 'logs')).catch(() => {});
      await cluster.stopAll();
      if (!opts.keep) await rm(scratch, { recursive: true, force: true }).catch(() => {});
    })();
    return cleaning;
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping every process of the run`);
      cleanup().finally(() => process.exit(130));
    });
  }
  const hardLimitMs = (opts.duration + opts.convergeTimeout + 900) * 1000;
  const watchdog = setTimeout(() => {
    console.error(`the run exceeded its hard limit of ${hardLimitMs / 1000} s: stopping everything`);
    cleanup().finally(() => process.exit(2));
  }, hardLimitMs);
  watchdog.unref();

  let status = 2;
  try {
    log(`seed ${opts.seed}, duration ${opts.duration} s, scratch ${scratch}`);
    await cluster.start({ nodeCount: 4 });
    for (const [binary, f] of Object.entries(cluster.flags)) {
      log(`${binary} repair flags passed: ${f.passed.join(', ') || 'none'}; ` +
        `not known to the binary yet: ${f.missing.join(', ') || 'none'}`);
    }
    status = await chaos(run, rng, log);
  } catch (e) {
    run.errors.push(e.stack || String(e));
    log(`the run failed: ${e.stack || e}`);
    for (const [name, w] of Object.entries(cluster.webs)) {
      console.error(`--- web ${name} log (tail)\n${w.server.log().slice(-3000)}`);
    }
  } finally {
    run.loadEnd = os.loadavg();
    run.finished = Date.now();
    await cleanup();
    clearTimeout(watchdog);
  }
  try {
    const goals = printSummary(run);
    if (opts.report !== '-') {
      await writeReport(run, goals, opts.report);
      console.log(`report written to ${path.relative(process.cwd(), opts.report) || opts.report}`);
    }
    if (status !== 2) status = goals.every((g) => g.met !== false) ? 0 : 1;
  } catch (e) {
    console.error(`could not write the report: ${e.stack || e}`);
    status = 2;
  }
  process.exit(status);
}

function machineFacts() {
  const cpus = os.cpus();
  return {
    cpu: `${cpus.length} × ${cpus[0]?.model?.trim() || 'unknown CPU'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    build: buildFacts(),
  };
}

/** The commit the binaries were built from (as far as git knows), for the report. */
function buildFacts() {
  try {
    const git = (...args) => execFileSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no') ? ', with uncommitted changes' : '';
    return `commit ${git('rev-parse', '--short', 'HEAD')} on ${git('rev-parse', '--abbrev-ref', 'HEAD')}${dirty}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/** The run proper once the cluster is up; returns 0 (the caller decides on goals). */
async function chaos(run, rng, log) {
  const { cluster, stats, opts } = run;
  const D = opts.duration * 1000;

  // ---- Sources: three seeded videos and four to upload during the run,
  // small (ffmpeg on a loaded 2-core machine) and all different.
  const sources = [];
  const shapes = [[320, 180, 2], [256, 144, 3], [320, 180, 3], [384, 216, 2], [256, 144, 2],
    [320, 180, 4], [384, 216, 3]];
  for (const [i, [width, height, seconds]] of shapes.entries()) {
    const file = path.join(run.scratch, `source-${i}.mp4`);
    await makeTestVideo(file, { width, height, seconds, rate: 15,
      extra: ['-metadata', `title=chaos source ${i} seed ${opts.seed}`] });
    sources.push({ file, sha256: await fileSha256(file) });
  }

  const videos = new Map();     // ready videos streamed: id -> { files }
  const reference = new Map();  // key -> verified sha256
  const originals = new Map();  // id -> source sha256
  const faultsInForce = new Set();
  // The faults in force, and whether `key` has a copy damaged on purpose.
  // A node loss stays a fault for the files it owned until their R copies are
  // back (a wiped node is up again long before it is refilled).
  const faults = (key) => [...faultsInForce,
    ...run.restores.filter((l) => l.started && l.restoredAfterMs === null && l.keys.includes(key))
      .map((l) => `${l.what}: not restored yet`),
    ...(run.corruptions.some((c) => c.key === key) ? ['a copy of the file damaged on purpose'] : [])];
  const uploader = new Uploader({ cluster, sources: sources.slice(3), videos, stats, rng,
    intervalMs: Math.max(10000, D / 12), log });
  run.uploader = uploader;

  // Seeded videos: uploaded and verified while everything is healthy.
  for (const source of sources.slice(0, 3)) {
    const web = cluster.upWebs()[0];
    const res = await uploadFile(web.server.url, source.file, { timeoutMs: 120000 });
    if (res.status !== 202) throw new Error(`seeding: upload answered ${res.status} ${res.text}`);
    await waitForStatus(web.server.url, res.json.id, 'ready', 300000);
    const files = await playerFiles(web.server.url, res.json.id);
    videos.set(res.json.id, { files, seeded: true });
    originals.set(res.json.id, source.sha256);
    log(`seeded video ${res.json.id} (${files.length} player files)`);
  }
  const viewers = new Viewers({ cluster, videos, reference, stats, faults, rng });
  run.viewers = viewers;
  viewers.start();
  // One full pass over the seeded files first, so that references exist
  // before anything is damaged.
  await waitFor(() => [...videos].every(([id, v]) => v.files.every((f) => reference.has(`${id}/${f}`))),
    { timeoutMs: 120000, intervalMs: 500, what: 'a verified read of every seeded file' });
  log(`viewers streaming (${stats.served} verified reads so far); faults start`);
  uploader.start();

  // The keys whose good bytes are known: verified reads and the originals.
  const expected = () => {
    const map = new Map();
    for (const [id, v] of videos) {
      for (const f of v.files) {
        const want = reference.get(`${id}/${f}`);
        if (want) map.set(`${id}/${f}`, want);
      }
      const original = originals.get(id) ??
        uploader.uploads.find((u) => u.id === id)?.sha256;
      if (original) map.set(`${id}/original`, original);
    }
    return map;
  };

  // ---- Background watch: time to restore R copies after each node loss
  // (of the files the node owned then, less those damaged on purpose, which
  // the corruption figures cover), corruptions detected (quarantined) and
  // repaired (good bytes again in place).
  const damaged = () => new Set(run.corruptions.map((c) => c.key));
  const lossStarted = async (what, name) => {
    const keys = await cluster.keysOwnedBy(name, [...expected().keys()]);
    const loss = { what, node: name, t: Date.now(), keys, restoredAfterMs: null, note: '' };
    run.restores.push(loss);
    return loss;
  };
  const restoredCheck = async (loss) => {
    const known = expected();
    const skip = damaged();
    const subset = new Map(loss.keys.filter((k) => known.has(k) && !skip.has(k)).map((k) => [k, known.get(k)]));
    const check = await cluster.checkCopies(subset);
    loss.lastShort = check.short;
    return check.short.length === 0;
  };
  // The nodes' own quarantine counters (streamgrid-admin list, when this
  // build reports them); they restart from 0 with the process, so increments
  // are summed per node.
  run.quarantineCounts = new Map();  // node id -> { last, total }
  const pollQuarantine = async () => {
    const list = await cluster.adminJson('list');
    for (const node of list?.nodes || []) {
      // An unreachable node's figures are not its own (0, or the last known).
      if (typeof node.quarantined !== 'number' || node.reachable === false ||
          (node.health && node.health !== 'up')) continue;
      const seen = run.quarantineCounts.get(node.id) || { last: 0, total: 0 };
      seen.total += node.quarantined >= seen.last ? node.quarantined - seen.last : node.quarantined;
      seen.last = node.quarantined;
      run.quarantineCounts.set(node.id, seen);
    }
  };
  let watching = true;
  let rounds = 0;
  const watch = (async () => {
    while (watching) {
      try {
        if (rounds++ % 5 === 0) await pollQuarantine();
        for (const loss of run.restores.filter((l) => l.restoredAfterMs === null && l.started)) {
          if (await restoredCheck(loss)) {
            loss.restoredAfterMs = Date.now() - loss.t;
            log(`R copies of the ${loss.keys.length} files ${loss.node} owned restored ` +
              `${(loss.restoredAfterMs / 1000).toFixed(1)} s after the ${loss.what}`);
          }
        }
        for (const c of run.corruptions) {
          const n = cluster.nodeByName(c.node);
          if (!c.detectedAt) await noteDetection(cluster, c, n, log);
          if (!c.repairedAt && n.up) {
            const got = await readFile(c.file).then(sha256, () => null);
            if (got === c.sha256) {
              c.repairedAt = Date.now();
              log(`corruption ${c.kind} of ${c.key} on ${c.node} good again on that node`);
              if (!c.detectedAt) await noteDetection(cluster, c, n, log);
            }
          }
        }
      } catch (e) {
        // etcd briefly unreachable, a node's files moving: next round.
      }
      await sleep(2000);
    }
  })();

  // ---- The schedule: each step at its share of the duration (later if the
  // one before took longer), one fault at a time.
  const pickMember = (except = []) => {
    const candidates = cluster.members().filter((n) => n.up && !except.includes(n.name));
    return candidates[Math.floor(rng() * candidates.length)];
  };
  const at = async (fraction) => {
    const wait = run.t0 + run.setupMs + fraction * D - Date.now();
    if (wait > 0) await sleep(wait);
  };
  run.setupMs = Date.now() - run.t0;
  const killAndRestart = async (downMs) => {
    const n = pickMember();
    log(`kill -9 storage node ${n.name} (${n.node.address}); restart in ${(downMs / 1000).toFixed(0)} s`);
    const label = `storage ${n.name} down`;
    faultsInForce.add(label);
    const loss = await lossStarted(`kill -9 of ${n.name} (down ${(downMs / 1000).toFixed(0)} s)`, n.name);
    await cluster.killNode(n.name);
    loss.started = true;
    await sleep(downMs);
    await cluster.restartNode(n.name);
    faultsInForce.delete(label);
    log(`storage node ${n.name} restarted`);
  };
  const corruptSome = async () => {
    const known = expected();
    const used = new Set(run.corruptions.map((c) => c.key));
    for (const kind of CORRUPTION_KINDS) {
      // A copy on a member that runs, of a key whose good bytes are known and
      // not damaged before (one damaged copy per key: the other stays good).
      const candidates = [];
      for (const n of cluster.members().filter((m) => m.up)) {
        for (const c of await copiesOn(n)) {
          const key = `${c.videoId}/${c.name}`;
          if (known.has(key) && !used.has(key)) candidates.push({ n, ...c, key });
        }
      }
      if (candidates.length === 0) { log(`no copy left to corrupt (${kind})`); continue; }
      const c = candidates[Math.floor(rng() * candidates.length)];
      used.add(c.key);
      try {
        const what = await corrupt(c.file, kind, rng);
        run.corruptions.push({ t: Date.now(), kind, node: c.n.name, key: c.key, videoId: c.videoId,
          name: c.name, file: c.file, sha256: known.get(c.key), what, detectedAt: null,
          repairedAt: null });
        log(`corrupted ${c.key} on ${c.n.name}: ${what}`);
      } catch (e) {
        log(`could not corrupt ${c.key} on ${c.n.name} (${kind}): ${e.message}`);
      }
    }
  };
  const migrate = async (command, n) => {
    const label = `${command} ${n.name}`;
    faultsInForce.add(`migration: ${label}`);
    const started = Date.now();
    // A migration the cluster started on its own (re-replication of a dead
    // node, its return) refuses an operator's change until it ends: retry a
    // bounded number of times, as an operator would.
    // One that failed before is resumed once first, as an operator would.
    let res;
    let resumed = false;
    for (let attempt = 1; ; attempt++) {
      res = await cluster.admin(command, [n.node.address], 300000);
      const said = res.stderr + res.stdout;
      if (res.code !== 0 && !resumed && /resume it first/.test(said)) {
        resumed = true;
        const r = await cluster.admin('resume', [], 300000);
        log(`a failed migration blocked ${command} ${n.name}; streamgrid-admin resume: ` +
          `${r.code === 0 ? 'done' : 'failed'}: ${(r.stdout + r.stderr).trim().split('\n').at(-1)}`);
        continue;
      }
      if (res.code === 0 || attempt >= 30 || !/migration is in progress/i.test(said)) break;
      log(`streamgrid-admin ${command} ${n.name} refused (${res.stderr.trim().split('\n').at(-1)}); ` +
        'retrying in 3 s');
      await sleep(3000);
    }
    const record = { what: label, ok: res.code === 0, seconds: (Date.now() - started) / 1000,
      output: (res.stdout + res.stderr).trim().split('\n').slice(-3).join(' | ') };
    run.migrations.push(record);
    faultsInForce.delete(`migration: ${label}`);
    log(`streamgrid-admin ${command} ${n.name}: ${record.ok ? 'done' : 'FAILED'} in ` +
      `${record.seconds.toFixed(1)} s: ${record.output}`);
    return record.ok;
  };

  await at(0.05);
  await killAndRestart(Math.max(5000, 0.05 * D));

  await at(0.15);
  await corruptSome();

  await at(0.25);
  {
    const i = await cluster.etcd.leaderIndex();
    log(`kill -9 the etcd leader (member ${i + 1})`);
    faultsInForce.add('etcd leader down');
    await cluster.etcd.kill(i);
    await sleep(10000);
    await cluster.etcd.restart(i);
    await cluster.etcd.waitHealthy(i, 60000);
    faultsInForce.delete('etcd leader down');
    log(`etcd member ${i + 1} restarted and healthy`);
  }

  await at(0.33);
  {
    const n = pickMember();
    log(`wipe storage node ${n.name}: stop, delete its data directory, start it empty`);
    faultsInForce.add(`storage ${n.name} wiped`);
    const loss = await lossStarted(`wipe of ${n.name}`, n.name);
    loss.started = true;
    await cluster.wipeNode(n.name);
    faultsInForce.delete(`storage ${n.name} wiped`);
    log(`storage node ${n.name} back, empty`);
  }

  await at(0.45);
  {
    const name = rng() < 0.5 ? 'A' : 'B';
    log(`kill -9 web server ${name}; restart in 10 s`);
    faultsInForce.add(`web ${name} down`);
    await cluster.killWeb(name);
    await sleep(10000);
    await cluster.restartWeb(name);
    faultsInForce.delete(`web ${name} down`);
    log(`web server ${name} restarted at ${cluster.webs[name].server.url}`);
  }

  await at(0.52);
  await corruptSome();

  await at(0.6);
  {
    const n = await cluster.addNodeProcess({ member: false });
    log(`started storage node ${n.name} (${n.node.address}); adding it`);
    if (await migrate('add', n)) n.member = true;
  }

  await at(0.72);
  {
    const newest = cluster.members().at(-1).name;
    const n = pickMember([newest]);
    log(`removing storage node ${n.name} (${n.node.address})`);
    if (await migrate('remove', n)) {
      n.member = false;
      await n.node.stop();
      n.up = false;
      log(`storage node ${n.name} removed and stopped`);
    }
  }

  await at(0.82);
  await killAndRestart(Math.max(10000, 0.12 * D));

  await at(0.94);
  await corruptSome();

  await at(1);
  log(`faults over; ${stats.served} verified reads, ${stats.failed} failed, ${stats.corrupt} corrupt`);

  // ---- Convergence: no new uploads; the last ones finish; every member runs.
  await uploader.stop();
  await viewers.stop();
  for (const n of cluster.members()) {
    if (!n.up) { log(`restarting ${n.name} for the convergence`); await cluster.restartNode(n.name); }
  }
  log(`waiting up to ${opts.convergeTimeout} s for every file to have R good copies on its owners`);
  const convergeStart = Date.now();
  let last = null;
  try {
    await waitFor(async () => {
      last = await cluster.checkCopies(await fullExpected(cluster, videos, reference, expected));
      return last.ok;
    }, { timeoutMs: opts.convergeTimeout * 1000, intervalMs: 3000, what: 'convergence' });
    run.convergedAfterMs = Date.now() - convergeStart;
    log(`converged in ${(run.convergedAfterMs / 1000).toFixed(1)} s`);
  } catch {
    run.convergedAfterMs = null;
    log(`not converged after ${opts.convergeTimeout} s: ${last?.short.length} of ${last?.files} ` +
      `files short of R good copies${last?.migrating ? ', a migration in progress' : ''}`);
  }
  run.copies = last;
  watching = false;
  await watch;
  await pollQuarantine().catch(() => {});
  for (const loss of run.restores.filter((l) => l.restoredAfterMs === null)) {
    if (await restoredCheck(loss).catch(() => false)) loss.restoredAfterMs = Date.now() - loss.t;
    else loss.note = `${loss.lastShort?.length ?? '?'} of its ${loss.keys.length} files short of R good copies at the end`;
  }

  // ---- Final verification.
  await finalChecks(run, videos, reference, originals, log);
  return 0;
}

// A corruption counts as detected by whatever found it first: a process
// saying so in its log (a node's read or scrub, a web server's verified
// read or repair loop, see ChaosCluster.scanForDamage), the node's
// quarantine naming it, or else the cluster rewriting that copy with the
// right bytes (a repair pass that compared copies, e.g. of a deleted file,
// which leaves nothing to quarantine).
async function noteDetection(cluster, c, n, log) {
  const seen = cluster.damageSeen.find((d) => d.key === c.key && d.node === c.node && d.t >= c.t);
  let by = null;
  if (seen) {
    c.detectedAt = seen.t;
    by = seen.by;
  } else if (await cluster.quarantined(n, c.videoId, c.name)) {
    c.detectedAt = Date.now();
    by = 'quarantine';
  } else if (c.repairedAt) {
    c.detectedAt = c.repairedAt;
    by = 'repair';
  }
  if (by) {
    c.detectedBy = by;
    log(`corruption ${c.kind} of ${c.key} on ${c.node} detected (${by})`);
  }
}

/**
 * Every file of every ready video with its good SHA-256: the verified
 * references, the originals, and any other name found on a node's disk (its
 * ETag then, from a web server).
 */
async function fullExpected(cluster, videos, reference, expected) {
  const map = expected();
  const web = cluster.upWebs()[0];
  for (const id of videos.keys()) {
    for (const name of await cluster.namesOnDisk(id)) {
      const key = `${id}/${name}`;
      if (map.has(key)) continue;
      if (reference.has(key)) { map.set(key, reference.get(key)); continue; }
      const res = await fetch(`${web.server.url}/content/${id}/${name}`, { method: 'HEAD',
        signal: AbortSignal.timeout(10000) }).catch(() => null);
      const etag = /^"([0-9a-f]{64})"$/.exec(res?.headers.get('etag') || '')?.[1];
      if (etag) { reference.set(key, etag); map.set(key, etag); }
    }
  }
  return map;
}

async function finalChecks(run, videos, reference, originals, log) {
  const { cluster, uploader } = run;
  const webs = cluster.upWebs();
  // Acknowledged uploads: ready, and the stored original is the uploaded file.
  run.uploadResults = [];
  for (const u of uploader.uploads) {
    const result = { id: u.id, status: 'unknown', originalOk: false, error: '' };
    try {
      const video = await getVideo(webs[0].server.url, u.id);
      result.status = video ? video.status : 'missing';
      if (video?.error) result.error = video.error;
      const res = await fetch(`${webs[0].server.url}/content/${u.id}/original`,
        { signal: AbortSignal.timeout(30000) });
      const body = Buffer.from(await res.arrayBuffer());
      result.originalOk = res.status === 200 && sha256(body) === u.sha256;
      if (!result.originalOk) {
        result.error ||= res.status === 200 ? 'the stored original has other bytes than the upload'
          : `original: HTTP ${res.status}`;
      }
    } catch (e) {
      result.error = e.message;
    }
    run.uploadResults.push(result);
  }
  // One last read of every file of every ready video through every web server.
  run.finalReads = { ok: 0, bad: [] };
  for (const [id, v] of videos) {
    for (const name of [...v.files, 'original']) {
      const key = `${id}/${name}`;
      const want = name === 'original'
        ? (originals.get(id) ?? uploader.uploads.find((u) => u.id === id)?.sha256)
        : reference.get(key);
      for (const web of webs) {
        try {
          const res = await fetch(`${web.server.url}/content/${key}`, { signal: AbortSignal.timeout(30000) });
          const got = sha256(Buffer.from(await res.arrayBuffer()));
          if (res.status === 200 && (!want || got === want)) run.finalReads.ok++;
          else run.finalReads.bad.push(`${key} via ${web.name}: HTTP ${res.status}` +
            (res.status === 200 ? ', wrong bytes' : ''));
        } catch (e) {
          run.finalReads.bad.push(`${key} via ${web.name}: ${e.message}`);
        }
      }
    }
  }
  log(`final reads: ${run.finalReads.ok} good, ${run.finalReads.bad.length} bad`);
  // Corruptions: repaired if the key has R good copies on its owners now.
  const short = new Set((run.copies?.short || []).map((s) => s.key));
  for (const c of run.corruptions) {
    c.repaired = !!run.copies && !short.has(c.key) && run.copies.files > 0;
    c.served = run.stats.corruptions.some((s) => s.key === c.key && s.t >= c.t);
    if (!c.detectedAt) await noteDetection(cluster, c, cluster.nodeByName(c.node), log);
  }
  // What the cluster says of itself (fields other branches add show when present).
  run.nodeList = await cluster.adminJson('list');
  run.statusJson = await cluster.adminJson('status');
}

main();
