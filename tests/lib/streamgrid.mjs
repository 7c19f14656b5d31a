// Test harness shared by the integration and browser tests: starts real
// StreamGrid processes on ephemeral ports, makes test videos with ffmpeg and
// talks to the HTTP API. Every wait polls a condition with a deadline.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { openAsBlob } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const buildDir = process.env.STREAMGRID_BUILD_DIR || path.join(repoRoot, 'build');

/** Polls `probe` until it returns a truthy value, or throws after `timeoutMs`. */
export async function waitFor(probe, { timeoutMs = 30000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      if (e.fatal) throw e;  // the probe knows waiting longer cannot help
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastError ? `: ${lastError.message}` : ''));
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(prefix = 'streamgrid-test-') {
  return mkdtemp(path.join(tmpdir(), prefix));
}

/** A 'data' listener calling `onLine` with each whole line of a process's output (every line, not only the last 64 KiB). */
function lineSplitter(onLine) {
  let rest = '';
  return (chunk) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop();
    for (const line of lines) onLine(line);
  };
}

/**
 * Starts streamgrid-web on an ephemeral port with its own data directory.
 * Resolves once it serves; `stop()` sends SIGTERM and waits for exit (SIGKILL
 * after 10 s). `kill()` sends SIGKILL. `onOutput(line)`, when given, sees
 * every line it prints. Its access log is off unless `accessLog`.
 */
export async function startWeb({
  dataDir, args = [], env = {}, wrap = [], onOutput, accessLog = false,
} = {}) {
  dataDir = dataDir || (await tempDir('streamgrid-web-'));
  await mkdir(dataDir, { recursive: true });
  const readyFile = path.join(dataDir, `ready-${process.pid}-${Date.now()}.json`);
  const binary = path.join(buildDir, 'cmd/web/streamgrid-web');
  // `wrap`: a command line to start it through, e.g. a shell that lowers the
  // open-file limit first (the binary and its arguments follow it).
  const command = [...wrap, binary];
  const child = spawn(command[0], [...command.slice(1),
    '--listen', '127.0.0.1:0',
    '--admin-listen', '127.0.0.1:0',
    '--data-dir', dataDir,
    '--web-root', path.join(repoRoot, 'web'),
    '--ready-file', readyFile,
    // Off unless asked for: tests look for events in the last 64 KiB of the
    // log, which a line per request would crowd out.
    '--access-log', String(accessLog),
    ...args,
  ], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk) => { log = (log + chunk.toString()).slice(-64 * 1024); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  if (onOutput) for (const stream of [child.stdout, child.stderr]) stream.on('data', lineSplitter(onOutput));
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  const ready = await waitFor(async () => {
    // fatal: waiting longer cannot help (a start-up error, e.g. a bad flag).
    if (exited) {
      // Let the last of its output (the reason) arrive first.
      const closed = (stream) => stream.closed || new Promise((r) => stream.once('close', r));
      await Promise.race([Promise.all([closed(child.stdout), closed(child.stderr)]),
        new Promise((r) => setTimeout(r, 1000))]);
      throw Object.assign(new Error(`streamgrid-web exited (${JSON.stringify(exited)}):\n${log}`),
        { fatal: true });
    }
    try {
      return JSON.parse(await readFile(readyFile, 'utf8'));
    } catch {
      return null;
    }
  }, { timeoutMs: 30000, what: 'streamgrid-web to start' }).catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\n${log}`);
  });
  const server = {
    url: ready.http,
    admin: ready.admin,
    dataDir,
    process: child,
    log: () => log,
    exited: () => exited,
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      const result = await exit;
      clearTimeout(timer);
      return result;
    },
    async kill() {
      if (!exited) child.kill('SIGKILL');
      return exit;
    },
  };
  return server;
}

/**
 * Starts a streamgrid-storage node on an ephemeral port (or `listen`) with its
 * own data directory (`etcd`: endpoints to announce it at; `args`: more flags).
 * Resolves once its ready file names its address.
 * `stop()` sends SIGTERM and waits (SIGKILL after 10 s); `kill()` sends SIGKILL;
 * `restart()` starts it again on the same address and data directory (retrying
 * a bounded number of times in case the port is briefly taken). `args` go to
 * the node as they are (e.g. --cluster-token-file, --tls-cert). `onOutput(line)`,
 * when given, sees every line it prints (across restarts).
 */
export async function startStorage({ dataDir, listen = '127.0.0.1:0', nodeId, etcd,
  args: extraArgs = [], wrap = [], onOutput } = {}) {
  dataDir = dataDir || (await tempDir('streamgrid-storage-'));
  await mkdir(dataDir, { recursive: true });
  const binary = path.join(buildDir, 'cmd/storage/streamgrid-storage');
  const node = { dataDir, address: null, process: null, log: () => '' };
  let exit = null;
  let exited = null;
  const launch = async (address) => {
    const readyFile = path.join(dataDir, `..ready-${process.pid}-${Date.now()}.json`);
    const args = ['--listen', address, '--data-dir', path.join(dataDir, 'data'),
      '--ready-file', readyFile];
    if (nodeId) args.push('--node-id', nodeId);
    // Announce the node in etcd (endpoints "host:port,...").
    if (etcd) args.push('--etcd', etcd, '--announce-ttl', '3');
    args.push(...extraArgs);  // more flags, e.g. --etcd-user
    const command = [...wrap, binary];  // as startWeb's `wrap`
    const child = spawn(command[0], [...command.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (chunk) => { log = (log + chunk.toString()).slice(-64 * 1024); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    if (onOutput) for (const stream of [child.stdout, child.stderr]) stream.on('data', lineSplitter(onOutput));
    exited = null;
    exit = new Promise((resolve) => child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }));
    node.process = child;
    node.log = () => log;
    try {
      const ready = await waitFor(async () => {
        if (exited) throw new Error(`streamgrid-storage exited (${JSON.stringify(exited)}):\n${log}`);
        try {
          return JSON.parse(await readFile(readyFile, 'utf8'));
        } catch {
          return null;
        }
      }, { timeoutMs: 30000, what: 'streamgrid-storage to start' });
      await rm(readyFile, { force: true });
      node.address = ready.grpc;
      node.metrics = ready.metrics;  // HOST:PORT, with --metrics-listen
    } catch (e) {
      child.kill('SIGKILL');
      await exit;
      throw e;
    }
  };
  node.stop = async () => {
    if (exited || !exit) return exited;
    node.process.kill('SIGTERM');
    const timer = setTimeout(() => node.process.kill('SIGKILL'), 10000);
    const result = await exit;
    clearTimeout(timer);
    return result;
  };
  node.kill = async () => {
    if (!exited) node.process.kill('SIGKILL');
    return exit;
  };
  node.restart = async () => {
    await node.stop();
    let lastError;
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        await launch(node.address);
        return node;
      } catch (e) {
        lastError = e;  // e.g. the port is still (or again) taken: try again shortly
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    throw lastError;
  };
  await launch(listen);
  return node;
}

/** Runs a program to completion (no shell); rejects with its stderr on failure. */
export async function run(program, args, { timeoutMs = 120000 } = {}) {
  const { stdout } = await execFileAsync(program, args, {
    timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/**
 * Runs streamgrid-admin with `args` (its flags included) to its end; never
 * rejects: resolves to { code, stdout, stderr } (code 0 on success), so that
 * tests can check refusals as well.
 */
export function runAdmin(args, { timeoutMs = 300000 } = {}) {
  return new Promise((resolve) => {
    execFile(path.join(buildDir, 'cmd/admin/streamgrid-admin'), args, { timeout: timeoutMs },
      (error, stdout, stderr) => resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr }));
  });
}

/**
 * Generates a test video with ffmpeg's lavfi sources (H.264 in MP4).
 * Options: width, height, seconds, audio (default true), rate (default 30),
 * extra output args.
 */
export async function makeTestVideo(file, { width = 640, height = 360, seconds = 6, audio = true,
  rate = 30, extra = [] } = {}) {
  const args = ['-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${rate}:duration=${seconds}`];
  if (audio) args.push('-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`);
  args.push('-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p');
  if (audio) args.push('-c:a', 'aac', '-shortest');
  args.push(...extra, file);
  await run('ffmpeg', args);
  return file;
}

/** Media facts of a file or URL, via ffprobe. */
export async function probe(input) {
  const out = await run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_format',
    '-show_streams', input]);
  return JSON.parse(out);
}

/**
 * POSTs a multipart upload (field `file`) of the file at `filePath`, streamed
 * from disk. Returns { status, json, headers }.
 */
export async function uploadFile(url, filePath, { filename, accept = 'application/json',
  field = 'file', timeoutMs = 300000 } = {}) {
  const form = new FormData();
  const blob = await openAsBlob(filePath);
  form.append(field, blob, filename || path.basename(filePath));
  const res = await fetch(`${url}/upload`, {
    method: 'POST', body: form, headers: { Accept: accept }, redirect: 'manual',
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

/** GET /api/videos/<id> as JSON (null on 404). */
export async function getVideo(url, id) {
  const res = await fetch(`${url}/api/videos/${id}`);
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`GET /api/videos/${id}: ${res.status} ${await res.text()}`);
  return res.json();
}

/**
 * GET /api/videos/<id> as a long poll: with `etag` (a previous answer's), the
 * server answers once the record no longer has that tag, or with 304 after
 * `waitSeconds`. Resolves to { status, etag, video, ms }: video is the record
 * on 200, null otherwise (304, 404).
 */
export async function getVideoWhenChanged(url, id, etag, waitSeconds = 20) {
  const headers = etag ? { 'If-None-Match': etag, Prefer: `wait=${waitSeconds}` } : {};
  const t0 = performance.now();
  const res = await fetch(`${url}/api/videos/${id}`, {
    headers, signal: AbortSignal.timeout((waitSeconds + 30) * 1000),
  });
  const text = await res.text();
  if (res.status !== 200 && res.status !== 304 && res.status !== 404) {
    throw new Error(`GET /api/videos/${id}: ${res.status} ${text}`);
  }
  return { status: res.status, etag: res.headers.get('etag'), video: res.status === 200 ? JSON.parse(text) : null,
    ms: performance.now() - t0 };
}

/**
 * Waits until the video reaches `status`, by long polls (each change is seen
 * at once; a missing record or an error is asked again 250 ms later); throws
 * early if it fails instead.
 */
export async function waitForStatus(url, id, status = 'ready', timeoutMs = 180000) {
  const deadline = Date.now() + timeoutMs;
  let etag = null;
  let lastError = null;
  for (;;) {
    const wait = Math.max(1, Math.min(20, Math.floor((deadline - Date.now()) / 1000)));
    let answer = null;
    try {
      answer = await getVideoWhenChanged(url, id, etag, wait);
    } catch (e) {
      lastError = e;
    }
    if (answer?.status === 200) {
      etag = answer.etag;
      const video = answer.video;
      if (video.status === status) return video;
      if (video.status === 'failed') {
        throw new Error(`video ${id} failed: ${video.error}`);
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for video ${id} to be ${status}` +
        (lastError ? `: ${lastError.message}` : ''));
    }
    if (answer?.status !== 200 && answer?.status !== 304) {
      etag = null;
      await new Promise((r) => setTimeout(r, 250));
    } else if (answer.status === 304 && answer.ms < 1000) {
      // A server that did not wait: not asked in a tight loop.
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Every file name a DASH manifest references: init and media segments of each
 * Representation, from its own SegmentTemplate or else its AdaptationSet's.
 */
export function dashFiles(mpd) {
  const files = new Set();
  const expand = (template, rep) => {
    const attrs = template[1];
    const init = /initialization="([^"]+)"/.exec(attrs)?.[1];
    const media = /media="([^"]+)"/.exec(attrs)?.[1];
    const start = Number(/startNumber="(\d+)"/.exec(attrs)?.[1] ?? 1);
    let count = 0;
    for (const s of template[2].matchAll(/<S\b([^>]*)\/>/g)) {
      count += 1 + Number(/\br="(\d+)"/.exec(s[1])?.[1] ?? 0);
    }
    if (init) files.add(init.replace('$RepresentationID$', rep));
    for (let n = start; n < start + count; n++) {
      files.add(media.replace('$RepresentationID$', rep)
        .replace(/\$Number%0(\d+)d\$/, (_, w) => String(n).padStart(Number(w), '0'))
        .replace('$Number$', String(n)));
    }
  };
  const templateRe = /<SegmentTemplate\b([^>]*)>([\s\S]*?)<\/SegmentTemplate>/;
  for (const set of mpd.matchAll(/<AdaptationSet\b[\s\S]*?<\/AdaptationSet>/g)) {
    const reps = [...set[0].matchAll(/<Representation\b[^>]*\bid="([^"]+)"[^>]*>([\s\S]*?)<\/Representation>/g)];
    const shared = templateRe.exec(set[0].replace(/<Representation\b[\s\S]*?<\/Representation>/g, ''));
    for (const [, rep, body] of reps) {
      const template = templateRe.exec(body) || shared;
      if (template) expand(template, rep);
    }
  }
  return [...files];
}

/** URIs referenced by an HLS playlist (media playlists, init maps, segments). */
export function hlsUris(playlist) {
  const uris = [];
  for (const line of playlist.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    if (t.startsWith('#')) {
      for (const m of t.matchAll(/URI="([^"]+)"/g)) uris.push(m[1]);
    } else {
      uris.push(t);
    }
  }
  return uris;
}

/**
 * Every file a player would fetch for a ready video (manifests, playlists,
 * segments, thumbnail, the storyboard's track and sheet).
 */
export async function playerFiles(url, id) {
  const base = `${url}/content/${id}/`;
  const names = new Set(['manifest.mpd', 'master.m3u8', 'thumbnail.jpg', 'storyboard.vtt',
    'storyboard.jpg']);
  for (const f of dashFiles(await (await fetch(base + 'manifest.mpd')).text())) names.add(f);
  for (const playlist of hlsUris(await (await fetch(base + 'master.m3u8')).text())) {
    names.add(playlist);
    if (playlist.endsWith('.m3u8')) {
      for (const uri of hlsUris(await (await fetch(base + playlist)).text())) names.add(uri);
    }
  }
  return [...names];
}

/** The names of `id`'s files stored on `node` (startStorage's), read from its data directory. */
export async function filesOn(node, id) {
  try {
    const names = await readdir(path.join(node.dataDir, 'data', 'content', id));
    return names.filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

export { writeFile, readFile, rm, stat };
