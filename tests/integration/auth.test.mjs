// Admin and cluster authentication with real processes: the admin API and the
// storage nodes refuse calls without their token (the CLI says what to do),
// a web server with the right cluster token uploads and plays, listeners on
// routable addresses need a token, TLS between web server and nodes and on the
// admin API (certificates made with openssl here), and ./dev's tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { spawn } from 'node:child_process';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles,
  buildDir, repoRoot, run, rm, waitFor,
} from '../lib/streamgrid.mjs';

const admin = path.join(buildDir, 'cmd/admin/streamgrid-admin');
const storageBinary = path.join(buildDir, 'cmd/storage/streamgrid-storage');
const webBinary = path.join(buildDir, 'cmd/web/streamgrid-web');
let scratch;
let video;
const running = [];
const files = {};

/** Runs a program; resolves to { code, stdout, stderr } whatever the exit code. */
function runAny(program, args, { env = {}, timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    execFile(program, args, { timeout: timeoutMs, env: { ...process.env, ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
      });
  });
}

/** streamgrid-admin ARGS without the developer's token variable. */
function cli(args, env = {}) {
  return runAny(admin, args, { env: { STREAMGRID_ADMIN_TOKEN_FILE: '', ...env } });
}

/** Runs `program` expecting it to exit by itself; resolves to { code, output }. */
function runToExit(program, args, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => { output += c; });
    child.stderr.on('data', (c) => { output += c; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${program} did not exit within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function writeSecret(name, contents) {
  const file = path.join(scratch, name);
  await writeFile(file, contents, { mode: 0o600 });
  return file;
}

/** A CA, a server certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1), a client certificate. */
async function makeCertificates(dir) {
  const f = (name) => path.join(dir, name);
  const key = (out) => ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', out];
  await run('openssl', ['req', '-x509', ...key(f('ca.key')), '-out', f('ca.pem'), '-days', '2',
    '-subj', '/CN=StreamGrid test CA']);
  await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    await run('openssl', ['req', ...key(f(`${who}.key`)), '-out', f(`${who}.csr`),
      '-subj', `/CN=streamgrid-${who}`]);
    await run('openssl', ['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'),
      '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${who}.pem`), '-days', '2',
      '-extfile', f(`${who}.ext`)]);
  }
  // A second CA that signed nothing here: trusting it must not be enough.
  await run('openssl', ['req', '-x509', ...key(f('other-ca.key')), '-out', f('other-ca.pem'),
    '-days', '2', '-subj', '/CN=Another CA']);
  return f;
}

before(async () => {
  scratch = await tempDir('streamgrid-auth-');
  files.adminToken = await writeSecret('admin-token', 'admin-secret-1234\n');
  files.clusterToken = await writeSecret('cluster-token', 'cluster-secret-5678\n');
  files.wrongToken = await writeSecret('wrong-token', 'admin-secret-1235\n');
  files.emptyToken = await writeSecret('empty-token', '');
  files.openToken = path.join(scratch, 'open-token');
  await writeFile(files.openToken, 'cluster-secret-5678\n');
  await chmod(files.openToken, 0o644);
  video = await makeTestVideo(path.join(scratch, 'in.mp4'), { width: 320, height: 180, seconds: 2 });
});

after(async () => {
  for (const p of running.reverse()) await p.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Uploads the test video and fetches every file a player would. */
async function uploadAndPlay(web) {
  const up = await uploadFile(web.url, video);
  assert.equal(up.status, 202, up.text);
  await waitForStatus(web.url, up.json.id, 'ready');
  for (const name of await playerFiles(web.url, up.json.id)) {
    const res = await fetch(`${web.url}/content/${up.json.id}/${name}`);
    assert.equal(res.status, 200, name);
    await res.arrayBuffer();
  }
  return up.json.id;
}

test('admin and storage calls need their tokens; with them uploads play', async () => {
  const nodeArgs = ['--cluster-token-file', files.clusterToken];
  const nodes = [await startStorage({ args: nodeArgs }), await startStorage({ args: nodeArgs })];
  running.push(...nodes);
  const content = `cluster:${nodes.map((n) => n.address).join(',')}`;
  const web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--content', content, '--replication-factor', '2',
      '--admin-token-file', files.adminToken, '--cluster-token-file', files.clusterToken],
  });
  running.push(web);

  // The admin API: no token, a wrong one (one character off, same length).
  for (const args of [['list', web.admin], ['list', web.admin, '--token-file', files.wrongToken]]) {
    const refused = await cli(args);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /list failed: UNAUTHENTICATED/);
    assert.match(refused.stderr, /the admin token was refused or is missing: pass --token-file/);
    assert.doesNotMatch(refused.stderr, /admin-secret/);
  }
  const membership = await cli(['remove', web.admin, nodes[0].address, '--no-wait']);
  assert.equal(membership.code, 1);
  assert.match(membership.stderr, /UNAUTHENTICATED/);

  // With it (before or after the subcommand, or from the environment).
  for (const [args, env] of [
    [['--token-file', files.adminToken, 'list', web.admin], {}],
    [['list', web.admin, '--token-file', files.adminToken], {}],
    [['list', web.admin], { STREAMGRID_ADMIN_TOKEN_FILE: files.adminToken }],
  ]) {
    const listed = await cli([...args, '--json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const nodesListed = JSON.parse(listed.stdout).nodes;
    assert.equal(nodesListed.length, 2);
    // The web server's own probes of the nodes carry the cluster token.
    for (const n of nodesListed) assert.equal(n.reachable, true, JSON.stringify(n));
  }

  // The web server with the right cluster token uploads and plays.
  await uploadAndPlay(web);

  // A web server without the cluster token is refused by the same nodes:
  // its admin API reports them unreachable for that reason, and uploads fail.
  const tokenless = await startWeb({
    dataDir: path.join(scratch, 'web-tokenless'),
    args: ['--content', content, '--replication-factor', '2'],
  });
  running.push(tokenless);
  const listed = await cli(['list', tokenless.admin, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  for (const n of JSON.parse(listed.stdout).nodes) {
    assert.equal(n.reachable, false);
    assert.match(n.error, /cluster token/);
  }
  const up = await uploadFile(tokenless.url, video);
  if (up.status === 202) {
    // Accepted into the spool; storing the transcoded files must fail.
    await waitForStatus(tokenless.url, up.json.id, 'failed');
  } else {
    assert.ok(up.status >= 500, `${up.status} ${up.text}`);
  }
  // A node with a wrong token is refused when adding it.
  const wrongNode = await startStorage({ args: ['--cluster-token-file', files.wrongToken] });
  running.push(wrongNode);
  const add = await cli(['add', web.admin, wrongNode.address, '--token-file', files.adminToken]);
  assert.equal(add.code, 1, add.stdout);
  assert.match(add.stderr, /refuses this web server's calls .*cluster token.*--cluster-token-file/);
  await tokenless.stop();
});

test('routable listeners need a token; bad token files stop the start', async () => {
  const dataDir = path.join(scratch, 'refused');
  const node = await runToExit(storageBinary, ['--listen', '0.0.0.0:0', '--data-dir', dataDir]);
  assert.equal(node.code, 1);
  assert.match(node.output, /refusing to listen on 0\.0\.0\.0 without --cluster-token-file/);
  assert.match(node.output, /--allow-unauthenticated/);

  const web = await runToExit(webBinary, ['--listen', '127.0.0.1:0', '--admin-listen', '0.0.0.0:0',
    '--data-dir', dataDir, '--web-root', path.join(repoRoot, 'web')]);
  assert.equal(web.code, 1);
  assert.match(web.output, /--admin-listen: refusing to listen on 0\.0\.0\.0 without --admin-token-file/);

  for (const [file, reason] of [[files.emptyToken, /is empty/],
    [files.openToken, /is accessible to every user; chmod 600/],
    [path.join(scratch, 'absent'), /token file .*absent: No such file/]]) {
    const bad = await runToExit(storageBinary, ['--listen', '127.0.0.1:0', '--data-dir', dataDir,
      '--cluster-token-file', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.output, reason);
    const badWeb = await runToExit(webBinary, ['--listen', '127.0.0.1:0', '--data-dir', dataDir,
      '--web-root', path.join(repoRoot, 'web'), '--admin-token-file', file]);
    assert.equal(badWeb.code, 1);
    assert.match(badWeb.output, reason);
  }

  // Explicitly allowed, or with a token, a routable node starts.
  for (const args of [['--allow-unauthenticated'], ['--cluster-token-file', files.clusterToken]]) {
    const started = await startStorage({ listen: '0.0.0.0:0', args });
    await started.stop();
  }
});

test('TLS between the web server and the nodes, and on the admin API', async () => {
  const certs = await makeCertificates(await tempDir('streamgrid-certs-'));
  const tlsNode = ['--cluster-token-file', files.clusterToken,
    '--tls-cert', certs('server.pem'), '--tls-key', certs('server.key')];
  // The second node also requires a client certificate (mutual TLS).
  const nodes = [await startStorage({ args: tlsNode }),
    await startStorage({ args: [...tlsNode, '--tls-ca', certs('ca.pem')] })];
  running.push(...nodes);
  const content = `cluster:${nodes.map((n) => n.address).join(',')}`;
  const web = await startWeb({
    dataDir: path.join(scratch, 'web-tls'),
    args: ['--content', content, '--replication-factor', '2',
      '--cluster-token-file', files.clusterToken,
      '--node-tls-ca', certs('ca.pem'),
      '--node-tls-cert', certs('client.pem'), '--node-tls-key', certs('client.key'),
      '--admin-token-file', files.adminToken,
      '--admin-tls-cert', certs('server.pem'), '--admin-tls-key', certs('server.key')],
  });
  running.push(web);
  await uploadAndPlay(web);

  const tls = ['--token-file', files.adminToken, '--tls-ca', certs('ca.pem')];
  const listed = await cli(['list', web.admin, ...tls, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  for (const n of JSON.parse(listed.stdout).nodes) assert.equal(n.reachable, true, JSON.stringify(n));

  // Clients without the CA: plaintext, or trusting another CA.
  for (const args of [['--token-file', files.adminToken],
    ['--token-file', files.adminToken, '--tls-ca', certs('other-ca.pem')]]) {
    const refused = await cli(['list', web.admin, ...args, '--timeout', '5']);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /list failed: UNAVAILABLE: cannot reach the admin API/);
    assert.match(refused.stderr, /if the admin API uses TLS \(--admin-tls-cert\), pass --tls-ca/);
  }

  // A web server that does not know the CA cannot use the nodes.
  const untrusting = await startWeb({
    dataDir: path.join(scratch, 'web-no-ca'),
    args: ['--content', content, '--cluster-token-file', files.clusterToken],
  });
  running.push(untrusting);
  const probe = await cli(['list', untrusting.admin, '--json']);
  assert.equal(probe.code, 0, probe.stderr);
  for (const n of JSON.parse(probe.stdout).nodes) assert.equal(n.reachable, false, JSON.stringify(n));
  await untrusting.stop();

  // One that knows the CA but has no client certificate reaches the first
  // node only: the second requires a certificate (mutual TLS).
  const certless = await startWeb({
    dataDir: path.join(scratch, 'web-no-cert'),
    args: ['--content', content, '--cluster-token-file', files.clusterToken,
      '--node-tls-ca', certs('ca.pem')],
  });
  running.push(certless);
  const partly = await cli(['list', certless.admin, '--json']);
  assert.equal(partly.code, 0, partly.stderr);
  const reachable = Object.fromEntries(JSON.parse(partly.stdout).nodes.map((n) => [n.address, n.reachable]));
  assert.deepEqual(reachable, { [nodes[0].address]: true, [nodes[1].address]: false });
  await certless.stop();
});

test('./dev creates 0600 tokens once and ./dev admin sends the admin token', async () => {
  const dir = path.join(scratch, 'dev-tokens');
  await run(path.join(repoRoot, 'dev'), ['tokens', dir]);
  const first = {};
  for (const name of ['admin-token', 'cluster-token']) {
    const info = await stat(path.join(dir, name));
    assert.equal(info.mode & 0o777, 0o600, name);
    first[name] = await readFile(path.join(dir, name), 'utf8');
    assert.match(first[name], /^[A-Za-z0-9+/=]{40,}\n$/, name);
  }
  assert.notEqual(first['admin-token'], first['cluster-token']);
  // Kept on later runs (running nodes and the CLI must keep agreeing).
  await chmod(path.join(dir, 'admin-token'), 0o644);
  await run(path.join(repoRoot, 'dev'), ['tokens', dir]);
  for (const name of ['admin-token', 'cluster-token']) {
    assert.equal(await readFile(path.join(dir, name), 'utf8'), first[name]);
    assert.equal((await stat(path.join(dir, name))).mode & 0o777, 0o600, name);
  }

  // ./dev admin passes .streamgrid/admin-token (created as ./dev up would).
  await run(path.join(repoRoot, 'dev'), ['tokens']);
  const web = await startWeb({
    dataDir: path.join(scratch, 'web-dev'),
    args: ['--admin-token-file', path.join(repoRoot, '.streamgrid', 'admin-token')],
  });
  running.push(web);
  const env = { ...process.env };
  delete env.STREAMGRID_ADMIN_TOKEN_FILE;
  const listed = await new Promise((resolve) => {
    execFile(path.join(repoRoot, 'dev'), ['admin', 'list', web.admin], { env, timeout: 300000 },
      (error, stdout, stderr) => resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr }));
  });
  // Accepted: the answer is this server's own (it keeps content locally).
  assert.doesNotMatch(listed.stderr, /UNAUTHENTICATED/);
  assert.match(listed.stderr, /list failed: FAILED_PRECONDITION: .*local directory/);
  await web.stop();
});
