// Small helpers shared by the benchmarks: logging, timing child processes,
// medians, machine facts and the memory figures of a process.
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { createServer } from 'node:net';

const started = Date.now();

// What to stop if the run is interrupted (Ctrl-C): each started process
// registers its stop here and removes it once stopped.
const pendingStops = new Set();

/** Registers `stop` to run on interruption; returns a function that unregisters it. */
export function onInterrupt(stop) {
  pendingStops.add(stop);
  return () => pendingStops.delete(stop);
}

/** Runs every registered stop (newest first), ignoring errors. */
export async function stopEverything() {
  for (const stop of [...pendingStops].reverse()) {
    pendingStops.delete(stop);
    await Promise.resolve().then(stop).catch(() => {});
  }
}

/** One progress line on stderr, prefixed with the seconds since start. */
export function log(line) {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The median of a list of numbers (null for an empty list). */
export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Runs `program args` (no shell) to completion and resolves to { code, ms,
 * stdout, stderr } whatever the exit status; kills it (SIGKILL) after
 * `timeoutMs`. stdout/stderr keep their last 4 MiB.
 */
export function runTimed(program, args, { timeoutMs = 600000, env, cwd, stdin = 'ignore' } = {}) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(program, args, { env: env ? { ...process.env, ...env } : process.env, cwd,
      stdio: [stdin, 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const cap = 4 * 1024 * 1024;
    child.stdout.on('data', (c) => { stdout = (stdout + c).slice(-cap); });
    child.stderr.on('data', (c) => { stderr = (stderr + c).slice(-cap); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const forget = onInterrupt(() => child.kill('SIGTERM'));
    child.on('error', (e) => { stderr += String(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      forget();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      resolve({ code: code ?? (signal ? 128 : 1), signal, ms, stdout, stderr });
    });
  });
}

/** Like runTimed, but throws with its stderr when the exit status is not 0. */
export async function runChecked(program, args, options) {
  const res = await runTimed(program, args, options);
  if (res.code !== 0) {
    throw new Error(`${program} ${args.join(' ').slice(0, 300)}: exit ${res.code}\n${res.stderr.slice(-2000)}`);
  }
  return res;
}

/** A free TCP port on 127.0.0.1 (released before returning: a small race, retried by callers). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/** { rssKiB, hwmKiB } from /proc/PID/status (null when the process is gone). */
export async function memoryOf(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
  } catch {
    return null;
  }
}

/**
 * Samples the RSS of `pids` every `intervalMs` until stop() is called;
 * stop() resolves to { [pid]: { maxRssKiB, hwmKiB } } (hwm: the last VmHWM read).
 */
export function sampleMemory(pids, intervalMs = 200) {
  const result = Object.fromEntries(pids.map((p) => [p, { maxRssKiB: 0, hwmKiB: 0 }]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const pid of pids) {
        const m = await memoryOf(pid);
        if (!m) continue;
        result[pid].maxRssKiB = Math.max(result[pid].maxRssKiB, m.rssKiB || 0);
        result[pid].hwmKiB = m.hwmKiB || result[pid].hwmKiB;
      }
      await sleep(intervalMs);
    }
  })();
  return { async stop() { running = false; await loop; return result; } };
}

/** The machine, for the report: CPU model, cores, load average now, memory. */
export async function machineInfo() {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? (cpus()[0]?.model || 'unknown');
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return {
    nproc: cpus().length,
    cpu: model.trim(),
    memoryGiB: Math.round(memKiB / 1024 / 1024 * 10) / 10,
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** The ratio a / b rounded to 3 digits (null when either is missing). */
export function ratio(a, b) {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return Math.round((a / b) * 1000) / 1000;
}

const CLOCK_TICKS_PER_SECOND = 100;  // USER_HZ: 100 on every Linux architecture Debian ships

/**
 * CPU time (user + system, ms) used so far by `pids` and all their
 * descendants (e.g. nginx's workers), read from /proc/PID/stat.
 */
export async function cpuMsOfTree(pids) {
  const stats = new Map();  // pid -> { ppid, ticks }
  for (const name of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(name)) continue;
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => null);
    if (!text) continue;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    stats.set(Number(name), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
  }
  const wanted = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, st] of stats) {
      if (!wanted.has(pid) && wanted.has(st.ppid)) { wanted.add(pid); grew = true; }
    }
  }
  let ticks = 0;
  for (const pid of wanted) ticks += stats.get(pid)?.ticks ?? 0;
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}
