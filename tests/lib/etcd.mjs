// A real local etcd cluster (Debian's etcd-server) on ephemeral ports, for
// integration tests: start, stop/kill/restart members, find the leader;
// optionally with TLS (certificates made by openssl), client certificates and
// authentication.
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { run, tempDir, waitFor } from './streamgrid.mjs';

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
 * A CA, a server certificate for IP 127.0.0.1 and localhost, and a client
 * certificate, made with openssl in `dir` (EC keys: quick to make). Returns
 * the PEM file paths { ca, serverCert, serverKey, cert, key }.
 */
async function makeCertificates(dir) {
  const f = (name) => path.join(dir, name);
  await writeFile(f('server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...key, '-days', '2', '-subj', '/CN=streamgrid-test-ca',
    '-keyout', f('ca.key'), '-out', f('ca.crt')]);
  for (const [name, cn] of [['server', 'etcd-test-server'], ['client', 'streamgrid-test-client']]) {
    await run('openssl', ['req', ...key, '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`),
      '-out', f(`${name}.csr`)]);
    await run('openssl', ['x509', '-req', '-days', '2', '-in', f(`${name}.csr`), '-CA', f('ca.crt'),
      '-CAkey', f('ca.key'), '-CAcreateserial', '-extfile', f(`${name}.ext`),
      '-out', f(`${name}.crt`)]);
  }
  return { ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'),
    cert: f('client.crt'), key: f('client.key') };
}

/**
 * Starts `size` etcd members; resolves once every member is healthy and a
 * leader is elected. The result has `endpoints` ("127.0.0.1:port" each),
 * `flag` ("etcd:" + endpoints joined), `kill(i)`, `stop(i)`, `restart(i)`,
 * `leaderIndex()`, `waitHealthy(i)`, `etcdctl(args)` and `stopAll()`.
 *
 * Options: `tls` (clients reach the members over TLS only; the result's
 * `tls` has the PEM paths { ca, cert, key } and `tlsArgs` the matching
 * --etcd-tls-* flags; the harness itself uses a second, plain listener),
 * `clientCertAuth` (etcd's --client-cert-auth), `rootPassword` (a root user
 * and role are created and authentication enabled; etcdctl then runs as root),
 * `authTokenTtl` (etcd's --auth-token-ttl, seconds), `quickElections`
 * (default true: 50 ms heartbeats and 500 ms elections, so that tests killing
 * a leader move on quickly; false keeps etcd's defaults).
 */
export async function startEtcdCluster(size = 3, { tls = false, clientCertAuth = false,
  rootPassword = null, authTokenTtl = 0, quickElections = true } = {}) {
  const root = await tempDir('streamgrid-etcd-');
  const certs = tls ? await makeCertificates(root) : null;
  const each = tls ? 3 : 2;
  const ports = await freePorts(each * size);
  const members = [];
  for (let i = 0; i < size; i++) {
    const client = ports[each * i];
    members.push({ name: `m${i + 1}`, client, peer: ports[each * i + 1],
      // The plain listener the harness uses (health, status, etcdctl).
      control: tls ? ports[each * i + 2] : client,
      dir: path.join(root, `m${i + 1}`), process: null, exit: null, log: '' });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const token = path.basename(root);

  const launch = async (m, state) => {
    await mkdir(path.dirname(m.dir), { recursive: true });
    const controlUrl = `http://127.0.0.1:${m.control}`;
    const clientUrl = tls ? `https://127.0.0.1:${m.client}` : controlUrl;
    const security = [];
    if (tls) {
      security.push('--cert-file', certs.serverCert, '--key-file', certs.serverKey,
        '--trusted-ca-file', certs.ca);
      if (clientCertAuth) security.push('--client-cert-auth');
    }
    if (authTokenTtl) security.push('--auth-token-ttl', String(authTokenTtl));
    const child = spawn('etcd', [
      '--name', m.name, '--data-dir', m.dir,
      '--listen-client-urls', tls ? `${clientUrl},${controlUrl}` : clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state,
      '--initial-cluster-token', token,
      '--experimental-initial-corrupt-check=true',
      // Quick elections: a killed leader is replaced within a second or two.
      // Without them, etcd's defaults (100 ms heartbeats, 1 s elections), as
      // ./dev up runs it.
      ...(quickElections ? ['--heartbeat-interval', '50', '--election-timeout', '500'] : []),
      ...security,
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
      return (await getJson(`http://127.0.0.1:${m.control}/health`)).health === 'true';
    } catch {
      return false;
    }
  };

  let authEnabled = false;
  const cluster = {
    root,
    members,
    endpoints: members.map((m) => `127.0.0.1:${m.client}`),
    get flag() { return `etcd:${this.endpoints.join(',')}`; },
    tls: certs && { ca: certs.ca, cert: certs.cert, key: certs.key },
    tlsArgs: certs ? ['--etcd-tls-ca', certs.ca, '--etcd-tls-cert', certs.cert,
      '--etcd-tls-key', certs.key] : [],
    /** Runs etcdctl on the plain listeners (as root once auth is on); its stdout. */
    async etcdctl(args) {
      const base = [`--endpoints=${members.map((m) => `127.0.0.1:${m.control}`).join(',')}`];
      if (authEnabled) base.push(`--user=root:${rootPassword}`);
      return run('etcdctl', [...base, ...args], { timeoutMs: 30000 });
    },
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
            const s = await getJson(`http://127.0.0.1:${members[i].control}/v3/maintenance/status`,
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
    if (rootPassword) {
      await cluster.etcdctl(['role', 'add', 'root']);
      await cluster.etcdctl(['user', 'add', 'root', `--new-user-password=${rootPassword}`]);
      await cluster.etcdctl(['user', 'grant-role', 'root', 'root']);
      await cluster.etcdctl(['auth', 'enable']);
      authEnabled = true;
    }
  } catch (e) {
    const logs = members.map((m) => `--- ${m.name}\n${m.log.slice(-2000)}`).join('\n');
    await cluster.stopAll();
    throw new Error(`${e.message}\n${logs}`);
  }
  return cluster;
}
