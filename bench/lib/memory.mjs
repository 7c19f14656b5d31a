// Memory: the web server's RSS while 256 viewers fetch segments (wrk) and a
// 2 GiB upload is in progress, and the storage nodes' RSS meanwhile. The
// upload body is generated as it is sent (a 1 MB MPEG-TS clip written again
// and again, with backpressure), so the benchmark never holds it either.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { runWrk } from './wrk.mjs';
import { tsClip } from './media.mjs';
import { log, memoryOf, sampleMemory, sleep } from './util.mjs';

/**
 * Starts a multipart POST /upload of `totalBytes` (rounded down to whole
 * copies of `chunk`, by default 1 MiB of random bytes) made of `chunk` again
 * and again, all but its last chunk, and holds it open until abort(); returns
 * { sent(), answer (a promise of { status } or { error }), abort() }.
 */
export function streamedUpload(url, totalBytes, chunk = randomBytes(1 << 20)) {
  totalBytes -= totalBytes % chunk.length;
  const boundary = `----streamgrid-bench-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; ` +
    `filename="big.ts"\r\nContent-Type: video/mp2t\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const target = new URL('/upload', url);
  let sent = 0;
  let aborted = false;
  const req = http.request({ host: target.hostname, port: target.port, path: target.pathname,
    method: 'POST', headers: {
      'Content-Type': `multipart/form-data; boundary=${boundary}`, Accept: 'application/json',
      'Content-Length': head.length + totalBytes + tail.length,
    } });
  const answer = new Promise((resolve) => {
    req.on('response', (res) => { res.resume(); res.on('end', () => resolve({ status: res.statusCode })); });
    req.on('error', (e) => resolve({ error: aborted ? 'aborted' : e.message }));
  });
  (async () => {
    const write = (buf) => new Promise((resolve) => {
      if (req.write(buf)) resolve(); else req.once('drain', resolve);
    });
    await write(head);
    // The last chunk is held back until abort(): an upload that completed
    // would become a video whose 2 GiB transcode runs on into the next steps
    // (ingest now takes 2 GiB within the window). It stays in progress.
    const held = totalBytes - chunk.length;
    while (sent < held && !aborted && !req.destroyed) {
      await write(chunk);
      sent += chunk.length;
    }
  })().catch(() => {});
  return { sent: () => sent, answer, abort() { aborted = true; req.destroy(); } };
}

/** The content cache's size in bytes from the web server's log, if it reports one. */
export function cacheBytesFromLog(text) {
  const matches = [...text.matchAll(/cache[^\n]*?(?:\bbytes["=: ]+(\d+)|\b(\d+) bytes\b)/gi)];
  return matches.length ? Number(matches.at(-1)[1] ?? matches.at(-1)[2]) : null;
}

/**
 * `servedBytes`: the bytes of every file wrk fetches (an upper bound of what
 * the content cache can hold here), reported beside the RSS.
 */
export async function benchMemory(stack, script, { seconds, uploadBytes = 2 * 1024 ** 3, servedBytes = null }) {
  const pids = stack.pids();
  const all = [pids.web, ...pids.storage];
  log(`memory (${stack.mode}): wrk -c 256 for ${seconds} s with a ${(uploadBytes / 2 ** 30).toFixed(0)} GiB upload in progress`);
  const sampler = sampleMemory(all, 100);
  const upload = streamedUpload(stack.url, uploadBytes, await readFile(await tsClip()));
  await sleep(1000);  // the upload is under way before the viewers arrive
  const wrk = await runWrk(stack.url, script, { connections: 256, seconds });
  const sentBytes = upload.sent();
  const finished = await Promise.race([upload.answer, sleep(10).then(() => null)]);
  upload.abort();
  const samples = await sampler.stop();
  const storage = pids.storage.map((pid) => samples[pid]);
  const end = await memoryOf(pids.web);
  const result = {
    webMaxRssMiB: samples[pids.web].maxRssKiB / 1024,
    webHwmMiB: (end?.hwmKiB ?? samples[pids.web].hwmKiB) / 1024,
    cacheBytes: cacheBytesFromLog(stack.web.log()),
    servedBytes,
    storageMaxRssMiB: storage.length ? Math.max(...storage.map((s) => s.maxRssKiB)) / 1024 : null,
    storageHwmMiB: storage.length ? Math.max(...storage.map((s) => s.hwmKiB)) / 1024 : null,
    uploadSentBytes: sentBytes,
    uploadAnsweredEarly: finished,
    wrk: { rps: wrk.rps, p99Ms: wrk.p99Ms, errors: wrk.errors },
  };
  log(`  web max RSS ${result.webMaxRssMiB.toFixed(1)} MiB (upload sent ${(sentBytes / 2 ** 20).toFixed(0)} MiB` +
    `${finished ? `, answered ${JSON.stringify(finished)}` : ''})` +
    (storage.length ? `, storage max RSS ${result.storageMaxRssMiB.toFixed(1)} MiB` : ''));
  await sleep(2000);  // the aborted upload's spool is removed
  return result;
}
