// The two StreamGrid set-ups the benchmarks run against, real processes on
// loopback ephemeral ports under the run's scratch directory: `single` (one
// streamgrid-web, SQLite and a local content directory) and `cluster` (three
// etcd members, three storage nodes, R = 2, one web server), plus a fourth
// storage node on demand for the migration benchmark.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startWeb, startStorage, buildDir, run } from '../../tests/lib/streamgrid.mjs';
import { startEtcdCluster } from '../../tests/lib/etcd.mjs';
import { log, onInterrupt } from './util.mjs';

export const webBinary = path.join(buildDir, 'cmd/web/streamgrid-web');
export const adminBinary = path.join(buildDir, 'cmd/admin/streamgrid-admin');

/** The flags of `binary --help` (e.g. to pass a flag only where a branch has it). */
export async function helpFlags(binary) {
  const help = await run(binary, ['--help'], { timeoutMs: 10000 });
  return new Set([...help.matchAll(/(?:^|\s)(--[a-z][\w-]*)/g)].map((m) => m[1]));
}

async function writeToken(file) {
  await writeFile(file, randomBytes(24).toString('base64') + '\n', { mode: 0o600 });
  await chmod(file, 0o600);
}

/**
 * Starts a stack: `mode` 'single' or 'cluster' in `dir`. The result has
 * `mode`, `url` (HTTP), `admin` (admin gRPC address), `web` (startWeb's
 * server), `nodes` (storage nodes), `pids()` ({ web, storage: [...] }),
 * `addNode()` (one more storage node announced in etcd; cluster only),
 * `adminCli(args)` and `stop()`. `webArgs` go to the web server;
 * `nodeLogLevel` is the storage nodes' --log-level ('warn' unless given).
 */
export async function startStack(mode, dir, { webArgs = [], nodeLogLevel = 'warn' } = {}) {
  await mkdir(dir, { recursive: true });
  const stack = { mode, nodes: [], etcd: null, web: null };
  const adminToken = path.join(dir, 'admin-token');
  const clusterToken = path.join(dir, 'cluster-token');
  await writeToken(adminToken);
  await writeToken(clusterToken);
  // info: the web server logs little at that level (uploads, jobs, and its
  // content cache's figures when it stops), nothing per request.
  const common = ['--admin-token-file', adminToken, '--log-level', 'info', ...webArgs];
  const forget = onInterrupt(() => stopQuietly(stack));
  try {
    if (mode === 'single') {
      stack.web = await startWeb({ dataDir: path.join(dir, 'web'), args: common });
    } else {
      // As ./dev up runs it (etcd's default heartbeats): the tests' quick
      // elections cost the members twice the idle CPU, on the cores ffmpeg
      // and the servers share.
      stack.etcd = await startEtcdCluster(3, { quickElections: false });
      for (let i = 1; i <= 3; i++) {
        stack.nodes.push(await startStorage({
          dataDir: path.join(dir, `n${i}`), nodeId: `n${i}`, etcd: stack.etcd.endpoints.join(','),
          args: ['--cluster-token-file', clusterToken, '--log-level', nodeLogLevel],
        }));
      }
      stack.web = await startWeb({
        dataDir: path.join(dir, 'web'),
        args: ['--metadata', stack.etcd.flag,
          '--content', `cluster:${stack.nodes.map((n) => n.address).join(',')}`,
          '--replication-factor', '2', '--cluster-token-file', clusterToken, ...common],
      });
    }
  } catch (e) {
    forget();
    await stopQuietly(stack);
    throw e;
  }
  stack.url = stack.web.url;
  stack.admin = stack.web.admin;
  stack.pids = () => ({ web: stack.web.process.pid, storage: stack.nodes.map((n) => n.process.pid) });
  stack.addNode = async () => {
    const i = stack.nodes.length + 1;
    const node = await startStorage({
      dataDir: path.join(dir, `n${i}`), nodeId: `n${i}`, etcd: stack.etcd.endpoints.join(','),
      args: ['--cluster-token-file', clusterToken, '--log-level', nodeLogLevel],
    });
    stack.nodes.push(node);
    return node;
  };
  stack.adminArgs = (command, args = []) =>
    ['--token-file', adminToken, '--timeout', '600', command, stack.admin, ...args];
  stack.stop = () => { forget(); return stopQuietly(stack); };
  log(`${mode} stack up: ${stack.url}` +
    (stack.nodes.length ? ` (storage ${stack.nodes.map((n) => n.address).join(', ')})` : ''));
  return stack;
}

async function stopQuietly(stack) {
  const quietly = (p) => Promise.resolve().then(p).catch(() => {});
  if (stack.web) await quietly(() => stack.web.stop());
  await Promise.all(stack.nodes.map((n) => quietly(() => n.stop())));
  if (stack.etcd) await quietly(() => stack.etcd.stopAll());
}
