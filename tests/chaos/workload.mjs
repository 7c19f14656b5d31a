// The chaos run's traffic: viewers streaming every ready video from every web
// server that is up (manifests, playlists, segments, thumbnails, some by
// Range), each full 200 body checked against its ETag ("<sha256>") and each
// Range body against the verified whole file, and an uploader adding videos.
import { readFile } from 'node:fs/promises';
import { uploadFile, playerFiles, getVideo } from '../lib/streamgrid.mjs';
import { sha256 } from './cluster.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Stats {
  constructor() {
    this.served = 0;          // responses with the right bytes
    this.rangeServed = 0;     // of which Range (206) responses
    this.failed = 0;          // reads that failed (status or network) on a web server that was up
    this.failedWithGoodCopyUp = 0;  // of which a running owner held a good copy when it failed
    this.failedUnclassified = 0;    // of which that could not be told (no reference yet, etcd down)
    this.failedWhileWebDown = 0;  // reads cut off by the web server being killed
    this.corrupt = 0;         // responses whose bytes did not match
    this.corruptBytes = 0;    // bytes of those responses
    this.failures = [];       // { t, key, web, what, faults } (first 200 kept)
    this.corruptions = [];    // { t, key, web, what } every corrupt response
    this.failuresByFault = new Map();  // active faults ("none" if none) -> count
    this.uploadsAttempted = 0;
    this.uploadsAcknowledged = 0;
    this.uploadsRefused = [];  // { status, text }
  }
}

/**
 * Streams continuously until stop(). `cluster`: ChaosCluster; `videos`: Map id
 * -> { files: [names] } of ready videos (grows as uploads become ready);
 * `reference`: Map key -> sha256 of verified bytes (filled here);
 * `faults(key)`: labels of the faults in force now (for key); `rng`: seeded random.
 */
export class Viewers {
  constructor({ cluster, videos, reference, stats, faults, rng, perWeb = 2, pauseMs = 20 }) {
    Object.assign(this, { cluster, videos, reference, stats, faults, rng, perWeb, pauseMs });
    this.stopping = false;
    this.loops = [];
    this.bodies = new Map();  // key -> verified bytes (small files), for checking Range answers
  }

  start() {
    for (const name of Object.keys(this.cluster.webs)) {
      for (let i = 0; i < this.perWeb; i++) this.loops.push(this.loop(name));
    }
  }

  async stop() {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  async failed(key, webName, what) {
    const s = this.stats;
    const faults = this.faults(key);
    s.failed++;
    // Was the failure avoidable: did a running owner hold a good copy?
    const want = this.reference.get(key);
    const up = want ? await this.cluster.goodCopyUp(key, want).catch(() => null) : null;
    if (up === null) s.failedUnclassified++;
    else if (up) s.failedWithGoodCopyUp++;
    else faults.push('no good copy on a running owner');
    const label = faults.length ? faults.join(' + ') : 'none';
    s.failuresByFault.set(label, (s.failuresByFault.get(label) || 0) + 1);
    if (s.failures.length < 200) s.failures.push({ t: Date.now(), key, web: webName, what, faults });
  }

  async loop(webName) {
    while (!this.stopping) {
      const ids = [...this.videos.keys()];
      if (ids.length === 0) { await sleep(200); continue; }
      const id = ids[Math.floor(this.rng() * ids.length)];
      for (const name of this.videos.get(id).files) {
        if (this.stopping) return;
        const web = this.cluster.webs[webName];
        if (!web.up) { await sleep(200); break; }
        await this.fetchOne(web, webName, id, name);
        // A short breath between requests: steady load without starving the
        // cluster's own work (transcoding, repair) on a small machine.
        await sleep(this.pauseMs);
      }
    }
  }

  async fetchOne(web, webName, id, name) {
    const key = `${id}/${name}`;
    const url = `${web.server.url}/content/${id}/${name}`;
    const known = this.bodies.get(key);
    // One read in five of a file whose bytes are known asks for a Range.
    const range = known && known.length > 16 && this.rng() < 0.2
      ? (() => {
        const a = Math.floor(this.rng() * (known.length - 1));
        const b = Math.min(known.length - 1, a + Math.floor(this.rng() * 64 * 1024));
        return [a, b];
      })()
      : null;
    let res;
    let body;
    try {
      res = await fetch(url, {
        headers: range ? { Range: `bytes=${range[0]}-${range[1]}` } : {},
        signal: AbortSignal.timeout(20000),
      });
      body = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      if (!web.up || web.server.exited()) this.stats.failedWhileWebDown++;
      else await this.failed(key, webName, `network: ${e.cause?.code || e.message}`);
      return;
    }
    if (range) {
      if (res.status !== 206) {
        await this.failed(key, webName, `Range: HTTP ${res.status} ${body.toString().slice(0, 200)}`);
        return;
      }
      if (!body.equals(known.subarray(range[0], range[1] + 1))) {
        this.corrupt(key, webName, `Range ${range[0]}-${range[1]}: wrong bytes`, body.length);
        return;
      }
      this.stats.served++;
      this.stats.rangeServed++;
      return;
    }
    if (res.status !== 200) {
      await this.failed(key, webName, `HTTP ${res.status} ${body.toString().slice(0, 200)}`);
      return;
    }
    const etag = /^"([0-9a-f]{64})"$/.exec(res.headers.get('etag') || '')?.[1];
    const got = sha256(body);
    const want = this.reference.get(key) || etag;
    if (!etag || got !== etag || (want && got !== want)) {
      this.corrupt(key, webName, `sha256 ${got.slice(0, 12)}, ETag ${etag?.slice(0, 12)}, ` +
        `verified ${want?.slice(0, 12)}`, body.length);
      return;
    }
    if (!this.reference.has(key)) this.reference.set(key, got);
    if (!known && body.length <= 4 * 1024 * 1024) this.bodies.set(key, body);
    this.stats.served++;
  }

  corrupt(key, webName, what, bytes) {
    this.stats.corrupt++;
    this.stats.corruptBytes += bytes;
    this.stats.corruptions.push({ t: Date.now(), key, web: webName, what });
  }
}

/**
 * Uploads one of `sources` (pre-made videos: { file, sha256 }) every
 * `intervalMs` through a web server that is up, until stop(). Acknowledged
 * uploads are kept in `uploads` ({ id, sha256, web, t, status }); once ready
 * their player files join `videos`.
 */
export class Uploader {
  constructor({ cluster, sources, videos, stats, rng, intervalMs, log }) {
    Object.assign(this, { cluster, sources, videos, stats, rng, intervalMs, log });
    this.uploads = [];
    this.stopping = false;
    this.wake = null;
  }

  start() {
    this.running = this.loop();
    this.watching = this.watch();
  }

  async stop() {
    this.stopping = true;
    this.wake?.();
    await this.running;
    await this.watching;
  }

  async pause(ms) {
    await new Promise((r) => {
      const timer = setTimeout(r, ms);
      this.wake = () => { clearTimeout(timer); r(); };
    });
  }

  async loop() {
    let n = 0;
    while (!this.stopping) {
      const webs = this.cluster.upWebs();
      if (webs.length) {
        const web = webs[n % webs.length];
        const source = this.sources[n % this.sources.length];
        n++;
        this.stats.uploadsAttempted++;
        try {
          const res = await uploadFile(web.server.url, source.file, { timeoutMs: 120000 });
          if (res.status === 202 && res.json?.id) {
            this.stats.uploadsAcknowledged++;
            this.uploads.push({ id: res.json.id, sha256: source.sha256, web: web.name, t: Date.now(),
              status: 'processing' });
            this.log(`upload ${res.json.id} acknowledged by ${web.name}`);
          } else {
            this.stats.uploadsRefused.push({ status: res.status, text: res.text.slice(0, 200) });
            this.log(`upload refused by ${web.name}: ${res.status} ${res.text.slice(0, 200)}`);
          }
        } catch (e) {
          this.stats.uploadsRefused.push({ status: 'network', text: e.message });
          this.log(`upload through ${web.name} failed: ${e.message}`);
        }
      }
      await this.pause(this.intervalMs);
    }
  }

  /** Follows acknowledged uploads until they are ready (then viewers stream them) or failed. */
  async watch() {
    while (!this.stopping || this.uploads.some((u) => u.status === 'processing' && !u.gaveUp)) {
      for (const u of this.uploads.filter((x) => x.status === 'processing')) {
        const web = this.cluster.upWebs()[0];
        if (!web) break;
        try {
          const video = await getVideo(web.server.url, u.id);
          if (video?.status === 'ready') {
            u.status = 'ready';
            this.videos.set(u.id, { files: await playerFiles(web.server.url, u.id) });
          } else if (video?.status === 'failed') {
            u.status = 'failed';
            u.error = video.error;
            this.log(`upload ${u.id} failed: ${video.error}`);
          }
        } catch {
          // a web server going down under us: next round
        }
      }
      if (this.stopping && this.stopDeadline === undefined) this.stopDeadline = Date.now() + 240000;
      if (this.stopDeadline && Date.now() > this.stopDeadline) {
        for (const u of this.uploads) if (u.status === 'processing') u.gaveUp = true;
        break;
      }
      await sleep(1000);
    }
  }
}

/** Reads a source file's SHA-256 (streamed through memory once; the sources are small). */
export async function fileSha256(file) {
  return sha256(await readFile(file));
}
