// The chaos run's cluster: three etcd members, storage nodes (R = 2, cluster
// token) and two web servers sharing etcd, all real processes on loopback
// ephemeral ports under one scratch directory. Knows how to kill, restart and
// wipe each of them, run streamgrid-admin, read the placement in force from
// etcd and check every file's copies on its owners straight from the nodes'
// data directories.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startWeb, startStorage, buildDir, run } from '../lib/streamgrid.mjs';
import { startEtcdCluster } from '../lib/etcd.mjs';

const adminBinary = path.join(buildDir, 'cmd/admin/streamgrid-admin');
const webBinary = path.join(buildDir, 'cmd/web/streamgrid-web');
const storageBinary = path.join(buildDir, 'cmd/storage/streamgrid-storage');

export const sha256 = (buffer) => createHash('sha256').update(buffer).digest('hex');

/**
 * The repair flags the binaries know today (other branches add them): each
 * wanted flag is passed only if `--help` lists it, with its value written as
 * the help's type says (a number of seconds, or of milliseconds if its help
 * says so, for INT/UINT/FLOAT; "20s" for TEXT durations). Returns { args,
 * passed, missing }.
 */
async function repairFlags(binary, wanted) {
  const help = await run(binary, ['--help'], { timeoutMs: 10000 });
  const args = [];
  const passed = [];
  const missing = [];
  for (const [flag, { seconds, bytes }] of Object.entries(wanted)) {
    const re = new RegExp(`^\\s*(-\\w,)?${flag}(?![\\w-])\\s*(\\S*)`);
    const match = help.split('\n').map((l) => re.exec(l)).find(Boolean);
    if (!match) {
      missing.push(flag);
      continue;
    }
    // CLI11 prints the option's type after its name: "--x INT:..." or "--x TEXT".
    const numeric = /^(INT|UINT|FLOAT|NUMBER)/.test(match[2]);
    let value;
    if (bytes !== undefined) value = String(bytes);
    else if (!numeric) value = `${seconds}s`;
    // A bare number is seconds unless the help speaks of milliseconds.
    else value = String(/\bms\b|millisecond/i.test(match.input) ? seconds * 1000 : seconds);
    args.push(flag, value);
    passed.push(`${flag} ${value}`);
  }
  return { args, passed, missing };
}

/** Runs streamgrid-admin; resolves to { code, stdout, stderr } whatever the exit code. */
export function adminCli(tokenFile, args, timeoutMs = 180000) {
  return new Promise((resolve) => {
    execFile(adminBinary, ['--token-file', tokenFile, '--timeout', String(timeoutMs / 1000), ...args],
      { timeout: timeoutMs + 10000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
      });
  });
}

export class ChaosCluster {
  /**
   * `scratch`: the run's directory; `log`: a function taking one line;
   * `contentCacheBytes`: the web servers' --content-cache-bytes (0: off).
   * Nothing starts until start().
   */
  constructor(scratch, log, { contentCacheBytes = 0 } = {}) {
    this.scratch = scratch;
    this.log = log;
    this.contentCacheBytes = contentCacheBytes;
    this.etcd = null;
    this.nodes = [];   // { name, node (startStorage's), member, up }
    this.webs = {};    // name -> { server, up, dataDir }
    this.damageSeen = [];  // { t, key, node, by }: see scanForDamage
    this.flags = { web: null, storage: null };
    this.adminToken = path.join(scratch, 'admin-token');
    this.clusterToken = path.join(scratch, 'cluster-token');
  }

  async start({ nodeCount = 4 } = {}) {
    for (const file of [this.adminToken, this.clusterToken]) {
      await writeFile(file, randomBytes(24).toString('base64') + '\n', { mode: 0o600 });
      await chmod(file, 0o600);
    }
    // Short repair intervals so that a few-minute run sees repairs happen.
    this.flags.web = await repairFlags(webBinary, {
      '--repair-after': { seconds: 20 },
      '--anti-entropy-interval': { seconds: 15 },
      '--handoff-interval': { seconds: 3 },
      '--node-down-after': { seconds: 5 },
      '--node-probe-interval': { seconds: 1 },
    });
    this.flags.storage = await repairFlags(storageBinary, {
      '--scrub-interval': { seconds: 20 },
      '--scrub-bytes-per-second': { bytes: 32 * 1024 * 1024 },
    });
    this.etcd = await startEtcdCluster(3);
    this.log(`etcd up: ${this.etcd.endpoints.join(', ')}`);
    for (let i = 1; i <= nodeCount; i++) await this.addNodeProcess({ member: true });
    this.log(`storage nodes up: ${this.nodes.map((n) => `${n.name}=${n.node.address}`).join(', ')}`);
    // One after the other: the first seeds the cluster state in etcd, the
    // second finds it there.
    await this.startWebServer('A');
    await this.startWebServer('B');
    this.log(`web servers up: A=${this.webs.A.server.url} B=${this.webs.B.server.url}`);
  }

  /** Starts one more storage node process (n1, n2, ...); `member` says whether the placement has it. */
  async addNodeProcess({ member }) {
    const name = `n${this.nodes.length + 1}`;
    const node = await startStorage({
      dataDir: path.join(this.scratch, name), nodeId: name, etcd: this.etcd.endpoints.join(','),
      args: ['--cluster-token-file', this.clusterToken, ...this.flags.storage.args],
      onOutput: (line) => this.scanForDamage('node', name, line),
    });
    const entry = { name, node, member, up: true };
    this.nodes.push(entry);
    return entry;
  }

  /**
   * Notes in this.damageSeen each copy a process says it found damaged:
   * { t, key, node (our name), by }. A node logs what its reads and scrubs
   * quarantine ("<key> found damaged by read|scrub: ..."); a web server logs
   * the damage its verified reads meet ("damaged copy of <key> on <node>")
   * and what its repair loop learns ("repair: <key> reported damaged on node
   * <node>", "repair: <key> quarantined on node <node> (found by <how>").
   */
  scanForDamage(kind, source, line) {
    let m;
    const note = (key, node, by) => this.damageSeen.push({ t: Date.now(), key, node, by });
    const named = (id) => (this.nodeByName(id) || this.nodeByAddress(id))?.name ?? id;
    if (kind === 'node') {
      if ((m = /(\S+\/\S+) found damaged by ([^:]+):/.exec(line))) note(m[1], source, `${m[2]} (node)`);
      return;
    }
    if ((m = /damaged copy of (\S+) on (\S+?): /.exec(line))) {
      note(m[1], named(m[2]), `verified read (web ${source})`);
    } else if ((m = /repair: (\S+) reported damaged on node (\S+) /.exec(line))) {
      note(m[1], named(m[2]), `verified read (web ${source})`);
    } else if ((m = /repair: (\S+) quarantined on node (\S+) \(found by ([^,]+),/.exec(line))) {
      note(m[1], named(m[2]), `${m[3]} (node)`);
    }
  }

  nodeByName(name) { return this.nodes.find((n) => n.name === name); }
  nodeByAddress(address) { return this.nodes.find((n) => n.node.address === address); }
  members() { return this.nodes.filter((n) => n.member); }

  async startWebServer(name) {
    const dataDir = path.join(this.scratch, `web-${name}`);
    const addresses = this.members().map((n) => n.node.address).join(',');
    const content = name === 'A' && !this.webs.A ? `cluster:${addresses}` : 'cluster';
    const server = await startWeb({
      dataDir,
      args: ['--metadata', this.etcd.flag, '--content', content,
        '--replication-factor', '2', '--server-id', name,
        '--admin-token-file', this.adminToken, '--cluster-token-file', this.clusterToken,
        '--job-lease-ttl', '3', '--job-rescan-interval-ms', '500',
        '--content-cache-bytes', String(this.contentCacheBytes),
        ...this.flags.web.args],
      onOutput: (line) => this.scanForDamage('web', name, line),
    });
    this.webs[name] = { server, up: true, dataDir };
    return server;
  }

  /** The web servers currently up (for clients and the admin CLI). */
  upWebs() {
    return Object.entries(this.webs).filter(([, w]) => w.up).map(([name, w]) => ({ name, ...w }));
  }

  async killWeb(name) {
    const web = this.webs[name];
    web.up = false;  // first, so that clients stop choosing it
    await web.server.kill();
  }

  async restartWeb(name) {
    await this.startWebServer(name);
  }

  async killNode(name) {
    const n = this.nodeByName(name);
    n.up = false;
    await n.node.kill();
  }

  async restartNode(name) {
    const n = this.nodeByName(name);
    await n.node.restart();
    n.up = true;
  }

  /** Stops the node, deletes its whole data directory and starts it again empty. */
  async wipeNode(name) {
    const n = this.nodeByName(name);
    n.up = false;
    await n.node.stop();
    await rm(path.join(n.node.dataDir, 'data'), { recursive: true, force: true });
    await n.node.restart();
    n.up = true;
  }

  /**
   * streamgrid-admin COMMAND <admin address of a web server that is up> ARGS;
   * { code, stdout, stderr }.
   */
  async admin(command, args = [], timeoutMs = 180000) {
    const web = this.upWebs()[0];
    if (!web) return { code: -1, stdout: '', stderr: 'no web server up' };
    return adminCli(this.adminToken, [command, web.server.admin, ...args], timeoutMs);
  }

  /** `streamgrid-admin --json COMMAND` parsed (null when it fails). */
  async adminJson(command) {
    const web = this.upWebs()[0];
    if (!web) return null;
    const res = await adminCli(this.adminToken, ['--json', command, web.server.admin], 30000);
    if (res.code !== 0) return null;
    try { return JSON.parse(res.stdout); } catch { return null; }
  }

  /** The cluster state in etcd (the placement in force and any migration), parsed. */
  async clusterState() {
    const out = await this.etcd.etcdctl(['get', '/streamgrid/cluster/state', '--print-value-only']);
    return JSON.parse(out);
  }

  /** The owners ({ id, address }) of `key` in `placement` (a Placement's JSON), primary first. */
  static ownersOf(placement, key) {
    const digest = createHash('sha256').update(key).digest();
    const partition = digest.readUInt16BE(0) >> 4;  // the top 12 bits of the position
    const owners = [];
    for (let rank = 0; rank < placement.replication_factor; rank++) {
      owners.push(placement.nodes[placement.replicas[rank][partition]]);
    }
    return owners;
  }

  /**
   * Whether a running owner of `key` (in the placement in force or the one a
   * migration moves to) holds a copy with SHA-256 `want` now. The cluster
   * state is read from etcd at most every two seconds.
   */
  async goodCopyUp(key, want) {
    if (!this.stateCache || Date.now() - this.stateCache.at > 2000) {
      this.stateCache = { at: Date.now(), state: await this.clusterState() };
    }
    const { state } = this.stateCache;
    const owners = [...ChaosCluster.ownersOf(state.current, key),
      ...(state.target ? ChaosCluster.ownersOf(state.target, key) : [])];
    for (const owner of owners) {
      const n = this.nodeByAddress(owner.address);
      if (!n || !n.up) continue;
      const got = await readFile(path.join(n.node.dataDir, 'data', 'content', key)).then(sha256, () => null);
      if (got === want) return true;
    }
    return false;
  }

  /** The keys of `keys` that node `name` owns in the placement in force. */
  async keysOwnedBy(name, keys) {
    const n = this.nodeByName(name);
    const { current } = await this.clusterState();
    return keys.filter((key) => ChaosCluster.ownersOf(current, key)
      .some((o) => o.address === n.node.address));
  }

  /**
   * For each key (videoId/name) of `expected` (a Map key -> sha256), how many
   * of its owners in the placement in force hold a good copy (bytes on disk
   * with that SHA-256) while their process runs. Returns { ok, files, short:
   * [{ key, good, r, bad: ["node: why"] }], migrating }; ok needs every key
   * at R good copies and no migration in progress.
   */
  async checkCopies(expected) {
    const state = await this.clusterState();
    const placement = state.current;
    const r = placement.replication_factor;
    const result = { ok: true, files: expected.size, short: [], migrating: !!state.target };
    const cache = new Map();
    for (const [key, want] of expected) {
      let good = 0;
      const bad = [];
      for (const owner of ChaosCluster.ownersOf(placement, key)) {
        const n = this.nodeByAddress(owner.address);
        if (!n) { bad.push(`${owner.id}: unknown`); continue; }
        if (!n.up) { bad.push(`${n.name}: down`); continue; }
        const file = path.join(n.node.dataDir, 'data', 'content', key);
        let got = cache.get(file);
        if (got === undefined) {
          got = await readFile(file).then(sha256, (e) => (e.code === 'ENOENT' ? 'missing' : e.code));
          cache.set(file, got);
        }
        if (got === want) good++;
        else bad.push(`${n.name}: ${/^[0-9a-f]{64}$/.test(got) ? 'wrong bytes' : got}`);
      }
      if (good < r) {
        result.ok = false;
        result.short.push({ key, good, r, bad });
      }
    }
    if (result.migrating) result.ok = false;
    return result;
  }

  /** Names of the files under videoId's folder on every node (running or not). */
  async namesOnDisk(videoId) {
    const names = new Set();
    for (const n of this.nodes) {
      try {
        for (const name of await readdir(path.join(n.node.dataDir, 'data', 'content', videoId))) {
          if (!name.startsWith('.') && !name.includes('.tmp')) names.add(name);
        }
      } catch {
        // no such folder on this node
      }
    }
    return [...names];
  }

  /**
   * Whether `node` shows `key` as quarantined: a file under its
   * data/quarantine/ whose path, or whose content (small files only: the
   * quarantine log), names both the video id and the file name.
   */
  async quarantined(n, videoId, name) {
    const dir = path.join(n.node.dataDir, 'data', 'quarantine');
    const walk = async (d) => {
      let entries;
      try { entries = await readdir(d, { withFileTypes: true }); } catch { return false; }
      for (const e of entries) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) {
          if (await walk(p)) return true;
          continue;
        }
        const rel = path.relative(dir, p);
        if (rel.includes(videoId) && rel.includes(name)) return true;
        if (e.name.startsWith('log') || e.name.endsWith('.log') || e.name.endsWith('.json')) {
          const text = await readFile(p, 'utf8').catch(() => '');
          if (text.length < 4 * 1024 * 1024 && text.includes(videoId) && text.includes(name)) return true;
        }
      }
      return false;
    };
    return walk(dir);
  }

  /** Writes the last output of every process (64 KiB each) to DIR/<name>.log. */
  async saveLogs(dir) {
    await mkdir(dir, { recursive: true });
    for (const [name, w] of Object.entries(this.webs)) {
      await writeFile(path.join(dir, `web-${name}.log`), w.server.log());
    }
    for (const n of this.nodes) await writeFile(path.join(dir, `${n.name}.log`), n.node.log());
    for (const m of this.etcd?.members || []) await writeFile(path.join(dir, `etcd-${m.name}.log`), m.log);
  }

  /** Stops everything, ignoring errors; safe to call twice. */
  async stopAll() {
    const quietly = (p) => Promise.resolve().then(() => p).catch(() => {});
    await Promise.all(Object.values(this.webs).map((w) => quietly(w.server.kill())));
    await Promise.all(this.nodes.map((n) => quietly(n.node.kill())));
    if (this.etcd) await quietly(this.etcd.stopAll());
  }
}
