// A real local etcd cluster (Debian's etcd-server) on ephemeral ports, for
// integration tests: start, stop/kill/restart members, find the leader.
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { tempDir, waitFor } from './streamgrid.mjs';

/** `count` distinct free TCP ports on 127.0.0.1 (held until all are chosen). */
async function freePorts(count) {
  const servers = [];
  const ports = [];
  for (let i = 0; i < count; i++) {
    const server = createServer();
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    servers.push(server);
    ports.push(server.address().port);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function getJson(url, { method = 'GET', body, timeoutMs = 2000 } = {}) {
  const res = await fetch(url, { method, body, signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

/**
 * Starts `size` etcd members; resolves once every member is healthy and a
 * leader is elected. The result has `endpoints` ("127.0.0.1:port" each),
 * `flag` ("etcd:" + endpoints joined), `kill(i)`, `stop(i)`, `restart(i)`,
 * `leaderIndex()`, `waitHealthy(i)` and `stopAll()`.
 */
export async function startEtcdCluster(size = 3) {
  const root = await tempDir('streamgrid-etcd-');
  const ports = await freePorts(2 * size);
  const members = [];
  for (let i = 0; i < size; i++) {
    members.push({ name: `m${i + 1}`, client: ports[2 * i], peer: ports[2 * i + 1],
      dir: path.join(root, `m${i + 1}`), process: null, exit: null, log: '' });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const token = path.basename(root);

  const launch = async (m, state) => {
    await mkdir(path.dirname(m.dir), { recursive: true });
    const child = spawn('etcd', [
      '--name', m.name, '--data-dir', m.dir,
      '--listen-client-urls', `http://127.0.0.1:${m.client}`,
      '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state,
      '--initial-cluster-token', token,
      '--experimental-initial-corrupt-check=true',
      // Quick elections: a killed leader is replaced within a second or two.
      '--heartbeat-interval', '50', '--election-timeout', '500',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    m.log = '';
    const keep = (chunk) => { m.log = (m.log + chunk.toString()).slice(-16 * 1024); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    m.process = child;
    m.exit = new Promise((resolve) => child.on('exit', resolve));
  };

  const healthy = async (m) => {
    try {
      return (await getJson(`http://127.0.0.1:${m.client}/health`)).health === 'true';
    } catch {
      return false;
    }
  };

  const cluster = {
    root,
    members,
    endpoints: members.map((m) => `127.0.0.1:${m.client}`),
    get flag() { return `etcd:${this.endpoints.join(',')}`; },
    async waitHealthy(i, timeoutMs = 30000) {
      await waitFor(() => healthy(members[i]), { timeoutMs, what: `etcd ${members[i].name} healthy` });
    },
    /** The index of the member every running member names as leader. */
    async leaderIndex() {
      const found = await waitFor(async () => {
        const ids = new Map();
        let leader = null;
        for (let i = 0; i < size; i++) {
          if (!members[i].process) continue;
          try {
            const s = await getJson(`http://127.0.0.1:${members[i].client}/v3/maintenance/status`,
              { method: 'POST', body: '{}' });
            ids.set(String(s.header.member_id), i);
            if (leader !== null && leader !== String(s.leader)) return null;
            leader = String(s.leader);
          } catch {
            // not answering: not the leader
          }
        }
        return leader !== null && ids.has(leader) ? { index: ids.get(leader) } : null;
      }, { timeoutMs: 30000, what: 'an etcd leader' });
      return found.index;
    },
    async kill(i) {
      const m = members[i];
      if (!m.process) return;
      m.process.kill('SIGKILL');
      await m.exit;
      m.process = null;
    },
    async stop(i) {
      const m = members[i];
      if (!m.process) return;
      m.process.kill('SIGTERM');
      const timer = setTimeout(() => m.process?.kill('SIGKILL'), 10000);
      await m.exit;
      clearTimeout(timer);
      m.process = null;
    },
    async restart(i) {
      await launch(members[i], 'existing');
    },
    async stopAll() {
      for (let i = 0; i < size; i++) await cluster.kill(i);
      await rm(root, { recursive: true, force: true });
    },
  };

  for (const m of members) await launch(m, 'new');
  try {
    for (let i = 0; i < size; i++) await cluster.waitHealthy(i);
    await cluster.leaderIndex();
  } catch (e) {
    const logs = members.map((m) => `--- ${m.name}\n${m.log.slice(-2000)}`).join('\n');
    await cluster.stopAll();
    throw new Error(`${e.message}\n${logs}`);
  }
  return cluster;
}
