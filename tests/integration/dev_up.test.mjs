// `./dev up` (cluster mode) as a person uses it, on free ports and its own
// state directory beside any running one: a storage node, an etcd member or
// the web server killed with SIGKILL is reported and everything else keeps
// serving; `./dev node N` starts a killed node again on its port and (wiped)
// data directory; SIGTERM and SIGINT stop every process it started and it
// exits; a `./dev up` killed with SIGKILL leaves processes the next one stops.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import path from 'node:path';
import {
  repoRoot, buildDir, tempDir, waitFor, makeTestVideo, uploadFile, waitForStatus, rm,
} from '../lib/streamgrid.mjs';

const devScript = path.join(repoRoot, 'dev');
const started = [];  // every ./dev up of this file, for the cleanup in after()

// Whether 127.0.0.1:port can be bound right now.
function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// A port base B whose ports B..B+14 (web, admin, etcd, nodes 1..4) are all free,
// below the kernel's ephemeral range so outgoing connections do not take them.
async function freePortBase() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + 20 * Math.floor(Math.random() * 500);
    // Web, admin, etcd and nodes B..B+14; the nodes' metrics B+141..B+143.
    const ports = [...Array.from({ length: 15 }, (_, i) => base + i), base + 141, base + 142, base + 143];
    const checks = await Promise.all(ports.map(portFree));
    if (checks.every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

// The command line of a running pid, or null once it is gone (a zombie,
// which has none, counts as gone).
function cmdline(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return text ? text.split('\0') : null;
  } catch {
    return null;
  }
}

// Pids of every process whose command line mentions `dir` (the state
// directory: every process ./dev up starts names it), found through /proc
// rather than trusting the pid file.
function processesUsing(dir) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmd = cmdline(entry);
    if (cmd && cmd.some((arg) => arg.includes(dir))) pids.push(Number(entry));
  }
  return pids;
}

async function httpOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(2000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

// `promise`'s value, or null if it takes longer than `ms` (the timer does not
// outlive it, so the test file ends as soon as its tests do).
async function within(promise, ms) {
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(() => r(null), ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Runs `./dev ARGS` with the test's state directory and ports; output is kept.
function runDev(args, env) {
  const child = spawn(devScript, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = { child, output: '', exited: null };
  const keep = (chunk) => { proc.output = (proc.output + chunk.toString()).slice(-256 * 1024); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  proc.exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    proc.exited = { code, signal };
    resolve(proc.exited);
  }));
  return proc;
}

/** Starts `./dev up` on free ports and a fresh state directory; resolves once it serves. */
async function startDevUp() {
  const stateDir = await tempDir('streamgrid-devup-');
  const base = await freePortBase();
  const env = {
    STREAMGRID_DEV_DIR: stateDir,
    STREAMGRID_DEV_PORT_BASE: String(base),
    STREAMGRID_BUILD_DIR: buildDir,
    STREAMGRID_DEV_SKIP_BUILD: '1',  // ctest built everything already
    STREAMGRID_DEV_STOP_TIMEOUT: '20',
    // Should this test process be killed (a ctest timeout), ./dev up stops
    // everything rather than leave it running.
    STREAMGRID_DEV_EXIT_WITH_PARENT: '1',
  };
  const up = Object.assign(runDev(['up'], env), { stateDir, base, env, url: `http://127.0.0.1:${base}` });
  started.push(up);
  await waitFor(async () => {
    if (up.exited) {
      throw Object.assign(new Error(`./dev up exited (${JSON.stringify(up.exited)}):\n${up.output}`),
        { fatal: true });
    }
    return up.output.includes('StreamGrid (3 etcd members') && httpOk(`${up.url}/healthz`);
  }, { timeoutMs: 180000, intervalMs: 200, what: './dev up to serve' }).catch((e) => {
    throw new Error(`${e.message}\n${up.output}`);
  });
  return up;
}

// The processes ./dev up says it started: { name, tier, pid, command }.
function pidFile(up) {
  return JSON.parse(readFileSync(path.join(up.stateDir, 'dev-up.json'), 'utf8'));
}

function processNamed(up, prefix) {
  const p = pidFile(up).processes.find((q) => q.name.startsWith(prefix));
  assert.ok(p, `no "${prefix}" in the pid file: ${JSON.stringify(pidFile(up))}`);
  return p;
}

// Sends `signal` to ./dev up and checks that it exits with `code` and that no
// process it started is left (by the pid file's pids and by /proc).
async function stopAndCheck(up, signal, code) {
  const { processes } = pidFile(up);
  assert.ok(processes.length >= 7, `pid file lists ${processes.length} processes`);
  up.child.kill(signal);
  const exited = await within(up.exit, 120000);
  assert.ok(exited, `./dev up did not exit within 120 s after ${signal}:\n${up.output}`);
  assert.deepEqual(exited, { code, signal: null }, up.output);
  assert.match(up.output, new RegExp(`${signal}: stopping every process`));
  assert.match(up.output, /every process stopped/);
  for (const p of processes) {
    const cmd = cmdline(p.pid);
    assert.ok(!cmd || cmd[0] !== p.command[0], `${p.name} (pid ${p.pid}) still running`);
  }
  assert.deepEqual(processesUsing(up.stateDir), [], 'processes naming the state directory');
}

after(async () => {
  // Whatever a failed test left: ./dev up first (it stops its children),
  // then anything still naming a state directory.
  for (const up of started) {
    if (!up.exited) {
      up.child.kill('SIGKILL');
      await up.exit;
    }
    for (const pid of processesUsing(up.stateDir)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  await waitFor(() => started.every((up) => processesUsing(up.stateDir).length === 0),
    { timeoutMs: 10000, what: 'test processes to be gone' }).catch(() => {});
  for (const up of started) await rm(up.stateDir, { recursive: true, force: true });
});

test('./dev up survives a killed storage node and etcd member, restarts the node, stops on SIGTERM',
  { timeout: 540000 }, async () => {
    const up = await startDevUp();
    const { processes } = pidFile(up);
    assert.equal(processes.filter((p) => p.name.startsWith('etcd member')).length, 3);
    assert.equal(processes.filter((p) => p.name.startsWith('storage node')).length, 3);
    assert.equal(processes.filter((p) => p.name.startsWith('web server')).length, 1);

    // A video to list once things start dying.
    const video = await makeTestVideo(path.join(up.stateDir, 'clip.mp4'),
      { width: 160, height: 120, seconds: 1, rate: 10, audio: false });
    const uploaded = await uploadFile(up.url, video);
    assert.equal(uploaded.status, 202, uploaded.text);
    const id = uploaded.json.id;
    await waitForStatus(up.url, id, 'ready');
    // The web server's metrics and each node's (on its own port).
    assert.ok(await httpOk(`${up.url}/metrics`), 'web metrics');
    for (const n of [1, 2, 3]) {
      assert.ok(await httpOk(`http://127.0.0.1:${up.base + 140 + n}/metrics`), `node ${n}'s metrics`);
    }
    const listsVideo = async () => {
      const res = await fetch(`${up.url}/api/videos`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) return false;
      return (await res.json()).videos.some((v) => v.id === id);
    };

    // kill -9 a storage node: reported, the rest keeps serving.
    const node2 = processNamed(up, 'storage node 2 ');
    process.kill(node2.pid, 'SIGKILL');
    await waitFor(() => /storage node 2 .*was killed by SIGKILL/.test(up.output),
      { timeoutMs: 30000, what: 'the death of storage node 2 to be reported' });
    assert.match(up.output, new RegExp(`storage node 2 \\(127\\.0\\.0\\.1:${up.base + 12}\\) \\(pid ${node2.pid}\\) was killed by SIGKILL; 6 other processes keep running\\. Start it again with: \\./dev node 2`));
    assert.equal(up.exited, null, `./dev up exited:\n${up.output}`);
    assert.ok(await httpOk(`${up.url}/healthz`));
    await waitFor(listsVideo, { timeoutMs: 30000, what: 'the video list' });

    // `./dev node 1` is refused while node 1 runs; `./dev node 2` starts node 2
    // again on its port, on a wiped data directory.
    const refused = runDev(['node', '1'], up.env);
    assert.deepEqual(await refused.exit, { code: 2, signal: null }, refused.output);
    assert.match(refused.output, /storage node 1 of \.\/dev up is still running/);
    await rm(path.join(up.stateDir, 'node2', 'data'), { recursive: true, force: true });
    const again = runDev(['node', '2'], up.env);
    started.push(Object.assign(again, { stateDir: up.stateDir }));
    await waitFor(async () => {
      if (again.exited) {
        throw Object.assign(new Error(`./dev node 2 exited: ${again.output}`), { fatal: true });
      }
      return tcpOpen(up.base + 12);
    }, { timeoutMs: 60000, what: 'storage node 2 to listen again' });
    assert.match(again.output, /storage node 2 of \.\/dev up again at 127\.0\.0\.1:\d+, data in .* \(empty\)/);
    again.child.kill('SIGTERM');
    const againExit = await within(again.exit, 60000);
    assert.ok(againExit, `./dev node 2 did not stop on SIGTERM:\n${again.output}`);
    assert.equal(againExit.signal, null);

    // kill -9 an etcd member: reported, the rest keeps serving from the other two.
    const etcd3 = processNamed(up, 'etcd member 3 ');
    process.kill(etcd3.pid, 'SIGKILL');
    await waitFor(() => /etcd member 3 .* was killed by SIGKILL; 5 other processes keep running/
      .test(up.output), { timeoutMs: 30000, what: 'the death of etcd member 3 to be reported' });
    assert.equal(up.exited, null, `./dev up exited:\n${up.output}`);
    await waitFor(() => httpOk(`${up.url}/healthz`), { timeoutMs: 30000, what: '/healthz' });
    await waitFor(listsVideo, { timeoutMs: 60000, what: 'the video list with an etcd member down' });

    await stopAndCheck(up, 'SIGTERM', 143);
  });

test('./dev up reports a killed web server, keeps the rest and stops everything on SIGINT',
  { timeout: 300000 }, async () => {
    const up = await startDevUp();
    const web = processNamed(up, 'web server');
    process.kill(web.pid, 'SIGKILL');
    await waitFor(() => /web server .* was killed by SIGKILL; 6 other processes keep running/
      .test(up.output), { timeoutMs: 30000, what: 'the death of the web server to be reported' });
    assert.equal(up.exited, null, `./dev up exited:\n${up.output}`);
    for (const p of pidFile(up).processes.filter((q) => q.pid !== web.pid)) {
      assert.ok(cmdline(p.pid), `${p.name} (pid ${p.pid}) is gone`);
    }
    await stopAndCheck(up, 'SIGINT', 130);
  });

test('./dev up stops what a ./dev up killed with SIGKILL left behind on its state directory',
  { timeout: 300000 }, async () => {
    const first = await startDevUp();
    const { processes } = pidFile(first);
    first.child.kill('SIGKILL');
    await first.exit;
    // Its children live on: nobody stops them but the next ./dev up.
    for (const p of processes) assert.ok(cmdline(p.pid), `${p.name} died with ./dev up`);
    const second = runDev(['up'], first.env);
    const up = Object.assign(second, { stateDir: first.stateDir, base: first.base, env: first.env, url: first.url });
    started.push(up);
    await waitFor(async () => {
      if (up.exited) {
        throw Object.assign(new Error(`./dev up exited (${JSON.stringify(up.exited)}):\n${up.output}`),
          { fatal: true });
      }
      return up.output.includes('StreamGrid (3 etcd members') && httpOk(`${up.url}/healthz`);
    }, { timeoutMs: 180000, intervalMs: 200, what: 'the second ./dev up to serve' });
    assert.match(up.output, /stopping 7 process\(es\) left by a \.\/dev up that was killed/);
    for (const p of processes) {
      const cmd = cmdline(p.pid);
      assert.ok(!cmd || cmd[0] !== p.command[0], `${p.name} (pid ${p.pid}) of the first still running`);
    }
    await stopAndCheck(up, 'SIGTERM', 143);
  });
