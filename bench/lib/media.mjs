// Sources the benchmarks upload (generated with ffmpeg once, cached under
// build/bench-cache/) and the HTTP calls around an upload.
import { mkdir, rename, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { buildDir, getVideo, playerFiles, waitFor } from '../../tests/lib/streamgrid.mjs';
import { log, runChecked, runTimed } from './util.mjs';

// STREAMGRID_BENCH_CACHE moves it (e.g. to share the sources between build directories).
export const cacheDir = process.env.STREAMGRID_BENCH_CACHE || path.join(buildDir, 'bench-cache');

async function exists(file) {
  try { return (await stat(file)).size > 0; } catch { return false; }
}

async function cached(name, make) {
  await mkdir(cacheDir, { recursive: true });
  const file = path.join(cacheDir, name);
  if (await exists(file)) return file;
  const partial = `${file}.partial${path.extname(file)}`;
  await make(partial);
  await rename(partial, file);
  return file;
}

/**
 * The noisy 1080p30 source of `seconds` (20 s: about 270 MB, like the 263 MB
 * file of the issue): testsrc2 with temporal noise, so that the encoder cannot
 * cheat, H.264 + AAC in MP4 with its index at the end. Shorter ones are cut
 * from the 20 s one without re-encoding.
 */
export async function noisySource(seconds) {
  const full = await cached('noise-1080p-20s.mp4', async (out) => {
    log('generating the 20 s noisy 1080p30 source once (cached in build/bench-cache/) ...');
    await runChecked('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=30:duration=20',
      '-f', 'lavfi', '-i', 'sine=frequency=440:duration=20',
      '-vf', 'noise=alls=20:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '26',
      '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', out], { timeoutMs: 1800000 });
  });
  if (seconds >= 20) return full;
  return cached(`noise-1080p-${seconds}s.mp4`, (out) => runChecked('ffmpeg', ['-hide_banner',
    '-loglevel', 'error', '-y', '-i', full, '-t', String(seconds), '-c', 'copy', out]));
}

/** A short 640x360 source for the serving videos (`index` varies the tone). */
export function smallSource(index) {
  return cached(`small-360p-8s-${index}.mp4`, (out) => runChecked('ffmpeg', ['-hide_banner',
    '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30:duration=8',
    '-f', 'lavfi', '-i', `sine=frequency=${300 + 110 * index}:duration=8`,
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest',
    out]));
}

/**
 * A 2 s 640x360 MPEG-TS clip (about 1 MB): the memory benchmark's 2 GiB upload
 * repeats it, so that whatever the server checks at the start of an upload sees
 * a real video (a TS stream can be cut and joined at any packet).
 */
export function tsClip() {
  return cached('loop-360p-2s.ts', (out) => runChecked('ffmpeg', ['-hide_banner', '-loglevel',
    'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30:duration=2',
    '-f', 'lavfi', '-i', 'sine=frequency=500:duration=2', '-c:v', 'libx264', '-preset', 'veryfast',
    '-b:v', '3M', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', '-f', 'mpegts', out]));
}

/**
 * POST /upload of `file` with curl (multipart, streamed from disk); resolves
 * to { status, id, ms, json }: ms from curl's start to the HTTP answer.
 */
export async function curlUpload(url, file, { timeoutMs = 900000 } = {}) {
  const res = await runTimed('curl', ['-sS', '-o', '-', '-w', '\n%{http_code} %{time_total}',
    '-H', 'Accept: application/json', '-H', 'Expect:', '-F', `file=@${file};type=video/mp4`,
    `${url}/upload`], { timeoutMs });
  const lines = res.stdout.trimEnd().split('\n');
  const [code, seconds] = (lines.pop() || '').split(' ');
  let json = null;
  try { json = JSON.parse(lines.join('\n')); } catch { /* not JSON */ }
  if (res.code !== 0 || !json?.id) {
    throw new Error(`upload of ${path.basename(file)}: curl exit ${res.code}, HTTP ${code}: ` +
      `${lines.join('\n').slice(0, 500)} ${res.stderr.slice(-500)}`);
  }
  return { status: Number(code), id: json.id, ms: Number(seconds) * 1000, json };
}

/**
 * POST /upload of `file` from Node (multipart, streamed from disk in 1 MiB
 * reads), for timings curl cannot give: resolves to { status, id, json,
 * lastByteMs, answerMs }, both measured from `t0` (performance.now()).
 */
export function nodeUpload(url, file, t0 = performance.now(), { timeoutMs = 900000 } = {}) {
  return new Promise((resolve, reject) => {
    stat(file).then(({ size }) => {
      const boundary = `----streamgrid-bench-${randomBytes(8).toString('hex')}`;
      const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; ` +
        `filename="${path.basename(file)}"\r\nContent-Type: video/mp4\r\n\r\n`);
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
      const target = new URL('/upload', url);
      let lastByteMs = null;
      const req = http.request({ host: target.hostname, port: target.port, path: target.pathname,
        method: 'POST', timeout: timeoutMs, headers: {
          'Content-Type': `multipart/form-data; boundary=${boundary}`, Accept: 'application/json',
          'Content-Length': head.length + size + tail.length,
        } });
      req.on('timeout', () => req.destroy(new Error(`upload of ${file}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      // 'finish': the last byte of the body has been handed to the kernel.
      req.on('finish', () => { lastByteMs = performance.now() - t0; });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { text += c; });
        res.on('end', () => {
          const answerMs = performance.now() - t0;
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          if (!json?.id) {
            reject(new Error(`upload of ${path.basename(file)}: HTTP ${res.statusCode}: ${text.slice(0, 500)}`));
            return;
          }
          resolve({ status: res.statusCode, id: json.id, json, lastByteMs: lastByteMs ?? answerMs, answerMs });
        });
      });
      req.write(head);
      const body = createReadStream(file, { highWaterMark: 1 << 20 });
      body.on('error', (e) => req.destroy(e));
      body.pipe(req, { end: false });
      body.on('end', () => req.end(tail));
    }, reject);
  });
}

/** nginx WebDAV PUT of `file` to `url`/dav/`name` with curl; ms until the answer. */
export async function curlPut(url, file, name) {
  const res = await runTimed('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}',
    '-H', 'Expect:', '-T', file, `${url}/dav/${name}`], { timeoutMs: 600000 });
  const [code, seconds] = res.stdout.trim().split(' ');
  if (res.code !== 0 || !/^20[14]$/.test(code)) {
    throw new Error(`PUT ${name}: curl exit ${res.code}, HTTP ${code} ${res.stderr}`);
  }
  return { ms: Number(seconds) * 1000 };
}

/** Waits for the video to be ready (throws if it fails); polls every `intervalMs`. */
export function waitReady(url, id, { timeoutMs = 1200000, intervalMs = 200 } = {}) {
  return waitFor(async () => {
    const video = await getVideo(url, id);
    if (video?.status === 'failed') {
      throw Object.assign(new Error(`video ${id} failed: ${video.error}`), { fatal: true });
    }
    return video?.status === 'ready' ? video : null;
  }, { timeoutMs, intervalMs, what: `video ${id} to be ready` });
}

/** DELETE /api/videos/<id> (cancels its transcoding); errors are ignored. */
export async function deleteVideo(url, id, adminHeaders = {}) {
  await fetch(`${url}/api/videos/${id}`, { method: 'DELETE', headers: adminHeaders,
    signal: AbortSignal.timeout(30000) }).catch(() => {});
}

/**
 * Uploads the four small sources, waits until all are ready and returns the
 * URL paths of their segments and manifests (playlists included, thumbnail
 * not), e.g. "/content/<id>/chunk-0-00001.m4s".
 */
export async function servingVideos(url) {
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push((await curlUpload(url, await smallSource(i))).id);
  const paths = [];
  for (const id of ids) {
    await waitReady(url, id, { timeoutMs: 600000 });
    for (const name of await playerFiles(url, id)) {
      if (name !== 'thumbnail.jpg') paths.push(`/content/${id}/${name}`);
    }
  }
  return paths;
}
