#!/usr/bin/env node
// The process supervisor behind `./dev up` and `./dev node N` (the `dev`
// script builds first, then runs this with the flags it wants passed on).
//
//   node tools/dev_up.mjs up [--single] [--node-flag F]... [--web-flag F]...
//   node tools/dev_up.mjs node N [--node-flag F]...
//
// `up` starts a 3-member etcd cluster, three storage nodes and the web server
// (or, with --single, the web server alone) and supervises them: a process
// that dies is reported on the terminal (which, pid, exit status or signal,
// time) and everything else keeps running. SIGINT, SIGTERM or SIGHUP stops
// every process it started, whatever happened before: the web server first,
// then the storage nodes, then etcd (so each can still reach what it depends
// on while it shuts down), each tier sent SIGTERM and, after
// STREAMGRID_DEV_STOP_TIMEOUT seconds (default 15), SIGKILL; a second Ctrl-C
// kills at once. Then it exits (130 after SIGINT, 143 after SIGTERM, 129 after
// SIGHUP).
//
// Children run in their own process groups, so a Ctrl-C on the terminal
// reaches this supervisor alone and the order above holds; the pid file
// (STATE/dev-up.json: the supervisor's pid and each process's name, pid and
// command) names them for scripts and tests. Should the supervisor itself be
// killed with SIGKILL, the next `./dev up` on the same state directory finds
// the processes it left behind through that file and stops them first.
//
// `node N` runs storage node N in the foreground on its port and data
// directory: N from 1 to 3 restarts a node of `./dev up` (e.g. after killing it
// and wiping its disk), 4 and up is a new node to add with streamgrid-admin.
//
// Environment:
//   STREAMGRID_BUILD_DIR       where the binaries are (default build/)
//   STREAMGRID_DEV_DIR         state directory (default .streamgrid/): tokens,
//                              etcd data and logs, node data, the pid file
//   STREAMGRID_DEV_PORT_BASE   B: every port derived from it (see devPorts);
//                              unset: the classic ports (8080, 8081, 2379...)
//   STREAMGRID_DEV_STOP_TIMEOUT seconds a tier gets to stop before SIGKILL
//   STREAMGRID_DEV_EXIT_WITH_PARENT=1  stop everything when the parent
//                              process dies (tests set it)
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync,
  writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.resolve(process.env.STREAMGRID_BUILD_DIR || path.join(root, 'build'));
const stateDir = path.resolve(process.env.STREAMGRID_DEV_DIR || path.join(root, '.streamgrid'));
const pidFile = path.join(stateDir, 'dev-up.json');
const stopTimeoutMs = 1000 * Number(process.env.STREAMGRID_DEV_STOP_TIMEOUT || 15);
const storageBinary = path.join(buildDir, 'cmd/storage/streamgrid-storage');
const webBinary = path.join(buildDir, 'cmd/web/streamgrid-web');

function log(message) {
  process.stderr.write(`\x1b[1;34m[dev]\x1b[0m ${message}\n`);
}

function die(message) {
  log(message);
  process.exit(2);
}

// "2026-12-04 22:41:03" in local time: what a person compares with a clock.
function now() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * The ports of ./dev up. Without a base, the classic ones: web 8080, admin
 * 8081, etcd member i client 2379/22379/32379 (peer one more), storage node N
 * 9100+N and its metrics 9200+N. With base B: web B, admin B+1, etcd member i
 * client B+2i and peer B+2i+1 (B+2..B+7), storage node N B+10+N (B+11..B+109);
 * `./dev web N` takes B+120+2N and the one after (B+124..B+139); node N's
 * metrics B+140+N (B+141..B+239).
 */
function devPorts(baseText = process.env.STREAMGRID_DEV_PORT_BASE) {
  if (baseText === undefined || baseText === '') {
    const prefix = (i) => (i === 1 ? '' : String(i));
    return {
      web: 8080,
      admin: 8081,
      etcdClient: (i) => Number(`${prefix(i)}2379`),
      etcdPeer: (i) => Number(`${prefix(i)}2380`),
      node: (n) => 9100 + n,
      nodeMetrics: (n) => 9200 + n,
    };
  }
  const base = Number(baseText);
  if (!Number.isInteger(base) || base < 1024 || base > 65535 - 240) {
    die(`STREAMGRID_DEV_PORT_BASE must be an integer from 1024 to ${65535 - 240}, not "${baseText}"`);
  }
  return {
    web: base,
    admin: base + 1,
    etcdClient: (i) => base + 2 * i,
    etcdPeer: (i) => base + 2 * i + 1,
    node: (n) => base + 10 + n,
    nodeMetrics: (n) => base + 140 + n,
  };
}

const ports = devPorts();
const etcdEndpoints = [1, 2, 3].map((i) => `127.0.0.1:${ports.etcdClient(i)}`).join(',');

// The command line of storage node N (as ./dev up and ./dev node start it).
function storageCommand(n, extraFlags, readyFile) {
  const address = `127.0.0.1:${ports.node(n)}`;
  const args = ['--listen', address, '--data-dir', path.join(stateDir, `node${n}`, 'data'),
    '--node-id', address, '--cluster-token-file', path.join(stateDir, 'cluster-token'),
    '--etcd', etcdEndpoints, '--metrics-listen', `127.0.0.1:${ports.nodeMetrics(n)}`];
  if (readyFile) args.push('--ready-file', readyFile);
  return { address, argv: [storageBinary, ...args, ...extraFlags] };
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

// The program a running pid executes (argv[0]), or null if it is gone.
function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
}

function readPidFile() {
  try {
    return JSON.parse(readFileSync(pidFile, 'utf8'));
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts, watches and stops the processes of ./dev up. */
class Supervisor {
  constructor() {
    this.procs = [];  // in start order
    this.stopping = false;
    this.killNow = false;
    this.stopRequested = null;  // resolves when a signal asks to stop
    this.stopSignal = new Promise((resolve) => { this.stopRequested = resolve; });
  }

  writePidFile() {
    const doc = {
      supervisor: process.pid,
      stateDir,
      processes: this.procs.map((p) => ({
        name: p.name, tier: p.tier, pid: p.pid, command: p.argv,
        ...(p.exited ? { exited: p.exited } : {}),
      })),
    };
    // Renamed into place: a reader never sees it half-written.
    const tmp = `${pidFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`);
    renameSync(tmp, pidFile);
  }

  /**
   * Starts `argv` in its own process group. `tier` orders the stop (higher
   * tiers stop first); `logFile`: its output goes there instead of the
   * terminal; `hint`: what to tell the person when it dies.
   */
  start(name, tier, argv, { logFile, hint = '' } = {}) {
    let stdio = ['ignore', 'inherit', 'inherit'];
    let fd = null;
    if (logFile) {
      fd = openSync(logFile, 'a');
      stdio = ['ignore', fd, fd];
    }
    const child = spawn(argv[0], argv.slice(1), { stdio, detached: true });
    if (fd !== null) closeSync(fd);
    const proc = { name, tier, argv, pid: child.pid, child, exited: null };
    proc.exit = new Promise((resolve) => {
      child.on('error', (e) => {
        if (proc.exited) return;
        proc.exited = { code: null, signal: null, error: e.message, at: now() };
        resolve(proc.exited);
      });
      child.on('exit', (code, signal) => {
        proc.exited = { code, signal, at: now() };
        resolve(proc.exited);
      });
    });
    proc.exit.then((how) => {
      if (!this.stopping) {
        const what = how.error ? `could not be started (${how.error})`
          : how.signal ? `was killed by ${how.signal}` : `exited with status ${how.code}`;
        const left = this.procs.filter((p) => !p.exited).length;
        const rest = left === 0 ? 'nothing else is running (Ctrl-C ends ./dev up)'
          : `${left} other process${left === 1 ? ' keeps' : 'es keep'} running`;
        log(`${how.at}  ${name} (pid ${proc.pid ?? '-'}) ${what}; ${rest}${hint ? `. ${hint}` : ''}`);
      }
      if (!this.stopping || this.procs.every((p) => p.exited)) this.safeWritePidFile();
    });
    this.procs.push(proc);
    this.safeWritePidFile();
    return proc;
  }

  safeWritePidFile() {
    try {
      this.writePidFile();
    } catch (e) {
      log(`cannot write ${pidFile}: ${e.message}`);
    }
  }

  // Signals a process's group (it and whatever it started, e.g. ffmpeg); the
  // leader alone when `leaderOnly`, so it can stop its children itself.
  static signal(proc, sig, leaderOnly) {
    if (!proc.pid) return;
    try {
      process.kill(leaderOnly ? proc.pid : -proc.pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** Stops every process, highest tier first: SIGTERM, then SIGKILL after the timeout. */
  async stopAll() {
    this.stopping = true;
    const tiers = [...new Set(this.procs.map((p) => p.tier))].sort((a, b) => b - a);
    for (const tier of tiers) {
      const group = this.procs.filter((p) => p.tier === tier);
      const running = group.filter((p) => !p.exited);
      if (running.length > 0) {
        for (const p of running) Supervisor.signal(p, this.killNow ? 'SIGKILL' : 'SIGTERM', true);
        const all = Promise.all(running.map((p) => p.exit));
        let timer;
        const timeout = new Promise((r) => { timer = setTimeout(r, stopTimeoutMs); });
        const interrupted = new Promise((r) => { this.onKillNow = r; });
        await Promise.race([all, timeout, interrupted]);
        clearTimeout(timer);
        for (const p of running.filter((q) => !q.exited)) {
          log(`${p.name} (pid ${p.pid}) did not stop${this.killNow ? '' : ` within ${stopTimeoutMs / 1000} s`}: SIGKILL`);
        }
      }
      // Whatever is left of each group, leader or strays (e.g. an ffmpeg of a
      // web server that was killed), goes now.
      for (const p of group) Supervisor.signal(p, 'SIGKILL', false);
      await Promise.race([Promise.all(group.map((p) => p.exit)), sleep(5000)]);
    }
    try {
      rmSync(pidFile, { force: true });
    } catch {
      // Nothing to do about it.
    }
  }

  // Resolves with `probe`'s first truthy value (polled every 100 ms); rejects
  // if one of `procs` exits first, a stop is requested, or `timeoutMs` passes.
  async waitFor(what, probe, procs, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.stopping) throw new Error('stopped');
      const dead = procs.find((p) => p.exited);
      if (dead) throw new Error(`${dead.name} exited during start-up`);
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s`);
      await Promise.race([sleep(100), this.stopSignal]);
    }
  }
}

// A previous ./dev up on this state directory that is still running is an
// error; the processes of one that was killed are stopped.
async function takeOverStateDir() {
  const previous = readPidFile();
  if (!previous) return;
  const sup = commandOf(previous.supervisor);
  if (previous.supervisor !== process.pid && sup && sup.some((a) => a.endsWith('dev_up.mjs'))) {
    die(`another ./dev up is running on ${stateDir} (pid ${previous.supervisor}); ` +
      'stop it first, or set STREAMGRID_DEV_DIR and STREAMGRID_DEV_PORT_BASE to run another');
  }
  const left = (previous.processes || []).filter((p) => {
    const cmd = commandOf(p.pid);
    return cmd && p.command && cmd[0] === p.command[0];
  });
  if (left.length === 0) return;
  log(`stopping ${left.length} process(es) left by a ./dev up that was killed: ` +
    left.map((p) => `${p.name} (pid ${p.pid})`).join(', '));
  for (const p of left) Supervisor.signal(p, 'SIGTERM', true);
  const deadline = Date.now() + stopTimeoutMs;
  while (left.some((p) => isAlive(p.pid)) && Date.now() < deadline) await sleep(100);
  for (const p of left) Supervisor.signal(p, 'SIGKILL', false);
  while (left.some((p) => commandOf(p.pid)) && Date.now() < deadline + 5000) await sleep(100);
}

async function etcdHealthy(endpoint) {
  try {
    const response = await fetch(`http://${endpoint}/health`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) return false;
    return (await response.json()).health === 'true';
  } catch {
    return false;
  }
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

async function up(args) {
  let single = false;
  const nodeFlags = [];
  const webFlags = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--single') single = true;
    else if (args[i] === '--node-flag' && i + 1 < args.length) nodeFlags.push(args[++i]);
    else if (args[i] === '--web-flag' && i + 1 < args.length) webFlags.push(args[++i]);
    else die('usage: ./dev up [--single]');
  }
  mkdirSync(stateDir, { recursive: true });
  await takeOverStateDir();

  const sup = new Supervisor();
  let exitCode = 0;
  // Runs until a signal, even once every child has died (the children's
  // handles are all that would keep the event loop alive otherwise).
  setInterval(() => {}, 1 << 30);
  const onSignal = (sig, code) => () => {
    if (sup.stopping) {
      if (!sup.killNow) log(`${sig} again: killing everything now`);
      sup.killNow = true;
      if (sup.onKillNow) sup.onKillNow();
      return;
    }
    log(`${sig}: stopping every process (again to kill them at once)`);
    exitCode = code;
    sup.stopRequested();
    sup.stopping = true;
  };
  process.on('SIGINT', onSignal('SIGINT', 130));
  process.on('SIGTERM', onSignal('SIGTERM', 143));
  process.on('SIGHUP', onSignal('SIGHUP', 129));
  // For tests: a test runner killed before it could stop ./dev up leaves no
  // processes behind either. (Not the default: `nohup ./dev up &` outlives
  // its shell on purpose.)
  if (process.env.STREAMGRID_DEV_EXIT_WITH_PARENT === '1') {
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent && !sup.stopping) {
        log(`parent process ${parent} is gone (STREAMGRID_DEV_EXIT_WITH_PARENT=1)`);
        onSignal('its parent gone', 143)();
      }
    }, 500).unref();
  }

  const mode = single ? 'single' : 'cluster';
  const webReady = path.join(stateDir, `web-ready-${mode}.json`);
  rmSync(webReady, { force: true });
  const webArgs = [webBinary, '--listen', `127.0.0.1:${ports.web}`,
    '--admin-listen', `127.0.0.1:${ports.admin}`,
    // Each mode keeps its own metadata: a record is only useful beside its content.
    '--data-dir', path.join(stateDir, mode), '--web-root', path.join(root, 'web'),
    '--admin-token-file', path.join(stateDir, 'admin-token'), '--ready-file', webReady];
  const admin = `127.0.0.1:${ports.admin}`;
  try {
    if (!single) {
      // Metadata and cluster state: a 3-member etcd cluster (Raft), members
      // restarted on their existing data when it is there.
      const initialCluster = [1, 2, 3]
        .map((i) => `etcd${i}=http://127.0.0.1:${ports.etcdPeer(i)}`).join(',');
      const etcds = [];
      for (const i of [1, 2, 3]) {
        const client = `http://127.0.0.1:${ports.etcdClient(i)}`;
        const peer = `http://127.0.0.1:${ports.etcdPeer(i)}`;
        etcds.push(sup.start(`etcd member ${i} (${client})`, 0, ['etcd', '--name', `etcd${i}`,
          '--data-dir', path.join(stateDir, `etcd${i}`),
          '--listen-client-urls', client, '--advertise-client-urls', client,
          '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
          '--initial-cluster', initialCluster, '--initial-cluster-state', 'new',
          '--initial-cluster-token', 'streamgrid-dev', '--experimental-initial-corrupt-check=true'],
        { logFile: path.join(stateDir, `etcd${i}.log`), hint: `Its log: ${path.join(stateDir, `etcd${i}.log`)}` }));
      }
      const endpoints = etcdEndpoints.split(',');
      await sup.waitFor('etcd did not become healthy', async () =>
        (await Promise.all(endpoints.map(etcdHealthy))).every(Boolean), etcds, 60000);
      log(`etcd members up at ${endpoints.join(' ')} (logs: ${stateDir}/etcd*.log)`);

      const nodes = [];
      const addresses = [];
      for (const n of [1, 2, 3]) {
        const readyFile = path.join(stateDir, `node${n}`, 'ready.json');
        mkdirSync(path.dirname(readyFile), { recursive: true });
        rmSync(readyFile, { force: true });
        const { address, argv } = storageCommand(n, nodeFlags, readyFile);
        addresses.push(address);
        nodes.push(sup.start(`storage node ${n} (${address})`, 1, argv, {
          hint: `Start it again with: ./dev node ${n}`,
        }));
      }
      for (const n of [1, 2, 3]) {
        await sup.waitFor(`storage node ${n} did not start`, async () =>
          readJson(path.join(stateDir, `node${n}`, 'ready.json')), nodes, 60000);
      }
      log(`storage nodes up at ${addresses.join(' ')}; their metrics at ` +
        [1, 2, 3].map((n) => `http://127.0.0.1:${ports.nodeMetrics(n)}/metrics`).join(' '));
      webArgs.push('--metadata', `etcd:${etcdEndpoints}`,
        '--content', `cluster:${addresses.join(',')}`, '--replication-factor', '2',
        '--cluster-token-file', path.join(stateDir, 'cluster-token'));
    }
    const web = sup.start(`web server (http://127.0.0.1:${ports.web})`, 2, [...webArgs, ...webFlags],
      { hint: 'Ctrl-C stops the rest; ./dev up again starts everything' });
    await sup.waitFor('the web server did not start', async () => readJson(webReady), [web], 60000);
    if (single) {
      log(`StreamGrid (single process, local content) at http://127.0.0.1:${ports.web}  (Ctrl-C stops it)`);
    } else {
      log(`StreamGrid (3 etcd members, 3 storage nodes, 2 replicas) at http://127.0.0.1:${ports.web}` +
        `, metrics at http://127.0.0.1:${ports.web}/metrics  (Ctrl-C stops it all)`);
      log(`admin: ./dev admin list ${admin}; kill a storage node and ./dev node N starts it again ` +
        `(N=1..3; on its data, or wipe ${stateDir}/nodeN/data first); ` +
        `another node: ./dev node 4, then ./dev admin add ${admin} 127.0.0.1:${ports.node(4)}`);
    }
    log(`pids of every process started: ${pidFile}`);
  } catch (e) {
    if (!sup.stopping) {
      log(`${e.message}; stopping everything (logs above${single ? '' : ` and in ${stateDir}/etcd*.log`})`);
      exitCode = 1;
      sup.stopping = true;
    }
  }
  if (!sup.stopping) await sup.stopSignal;
  await sup.stopAll();
  log('every process stopped');
  process.exit(exitCode);
}

// ./dev node N: storage node N in the foreground; SIGINT reaches it from the
// terminal, SIGTERM or SIGHUP to this script are passed on.
function node(args) {
  const n = Number(args[0]);
  const nodeFlags = [];
  for (let i = 1; i < args.length; i++) {
    if (args[i] === '--node-flag' && i + 1 < args.length) nodeFlags.push(args[++i]);
    else die('usage: ./dev node N');
  }
  if (!Number.isInteger(n) || n < 1 || n > 99) {
    die('usage: ./dev node N   (N from 1 to 99: 1-3 restart a node of ./dev up, 4 and up are new ones)');
  }
  const previous = readPidFile();
  const same = previous?.processes?.find((p) => p.name.startsWith(`storage node ${n} `) && !p.exited);
  if (same && commandOf(same.pid)?.[0] === same.command[0]) {
    die(`storage node ${n} of ./dev up is still running (pid ${same.pid}); kill it first, e.g. kill -9 ${same.pid}`);
  }
  mkdirSync(path.join(stateDir, `node${n}`), { recursive: true });
  const { address, argv } = storageCommand(n, nodeFlags, null);
  const data = path.join(stateDir, `node${n}`, 'data');
  const what = n <= 3 ? `storage node ${n} of ./dev up again` : `storage node ${n}`;
  log(`${what} at ${address}, data in ${data}${existsSync(data) ? '' : ' (empty)'}, ` +
    'announced in the etcd of ./dev up  (Ctrl-C stops it)');
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
  process.on('SIGINT', () => {});  // the terminal sent it to the node as well
  for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => die(`cannot start ${argv[0]}: ${e.message}`));
  child.on('exit', (code, signal) => {
    if (signal) log(`storage node ${n} was stopped by ${signal}`);
    process.exit(code ?? 128 + (constants.signals[signal] || 0));
  });
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'up') await up(rest);
else if (command === 'node') node(rest);
else die('usage: dev_up.mjs up [--single] | node N   (see the comment at the top)');
