// StreamGrid against an etcd that requires authentication and TLS with client
// certificates: a storage node announces itself and the web server keeps its
// records and cluster state there, as a user allowed only /streamgrid/; an
// upload becomes a playable video. Wrong credentials stop the web server at
// start with etcd's reason; without the TLS settings it says what to check
// and refuses uploads with a clear 503.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, playerFiles, waitFor,
} from '../lib/streamgrid.mjs';
import { startEtcdCluster } from '../lib/etcd.mjs';

const USER = 'streamgrid';
const PASSWORD = 'Pa55-word for etcd';

let scratch;
let etcd;
let passwordFile;
let node;
let web;

/** The flags every StreamGrid process gets to reach this etcd. */
function etcdArgs({ password = passwordFile, tls = true } = {}) {
  return ['--etcd-user', USER, '--etcd-password-file', password, ...(tls ? etcd.tlsArgs : [])];
}

before(async () => {
  scratch = await tempDir();
  etcd = await startEtcdCluster(1, { tls: true, clientCertAuth: true, rootPassword: 'root-pw' });
  // A user that may only touch StreamGrid's keys, as an operator would set up.
  await etcd.etcdctl(['role', 'add', USER]);
  await etcd.etcdctl(['role', 'grant-permission', USER, '--prefix=true', 'readwrite', '/streamgrid/']);
  await etcd.etcdctl(['user', 'add', USER, `--new-user-password=${PASSWORD}`]);
  await etcd.etcdctl(['user', 'grant-role', USER, USER]);
  passwordFile = path.join(scratch, 'etcd-password');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  await chmod(passwordFile, 0o600);
});

after(async () => {
  await web?.stop();
  await node?.stop();
  await etcd?.stopAll();
});

test('a node and a web server on an etcd with auth and TLS: an upload becomes ready', async () => {
  node = await startStorage({
    dataDir: path.join(scratch, 'node1'), nodeId: 'node1',
    etcd: etcd.endpoints.map((e) => `https://${e}`).join(','), args: etcdArgs(),
  });
  // The announcement is in etcd, under the node's lease.
  await waitFor(async () => (await etcd.etcdctl(['get', '--prefix', '--keys-only',
    '/streamgrid/nodes/'])).includes('/streamgrid/nodes/node1'),
  { timeoutMs: 30000, what: 'the node announced in etcd' });

  web = await startWeb({
    dataDir: path.join(scratch, 'web'),
    args: ['--metadata', etcd.flag, '--content', `cluster:${node.address}`,
      '--replication-factor', '1', ...etcdArgs()],
  });
  const video = await makeTestVideo(path.join(scratch, 'v.mp4'), { width: 320, height: 180, seconds: 2 });
  const res = await uploadFile(web.url, video);
  assert.equal(res.status, 202, res.text);
  const id = res.json.id;
  await waitForStatus(web.url, id, 'ready', 120000);
  for (const name of await playerFiles(web.url, id)) {
    const file = await fetch(`${web.url}/content/${id}/${name}`);
    assert.equal(file.status, 200, name);
    await file.arrayBuffer();
  }
  // The record lives in etcd; the password is in no log.
  const record = JSON.parse(await etcd.etcdctl(['get', '--print-value-only', `/streamgrid/videos/${id}`]));
  assert.equal(record.status, 'ready');
  assert.ok(!web.log().includes(PASSWORD), 'the password is not logged');
  assert.ok(!node.log().includes(PASSWORD), 'the password is not logged');
});

test('wrong credentials stop the web server at start; without TLS settings it says what to check', async () => {
  const wrong = path.join(scratch, 'wrong-password');
  await writeFile(wrong, 'not it\n', { mode: 0o600 });
  await assert.rejects(
    startWeb({ dataDir: path.join(scratch, 'web-wrong'), args: ['--metadata', etcd.flag, ...etcdArgs({ password: wrong })] }),
    /etcd authentication as user 'streamgrid' failed: etcdserver: authentication failed/);

  const empty = path.join(scratch, 'empty-password');
  await writeFile(empty, '\n', { mode: 0o600 });
  await assert.rejects(
    startWeb({ dataDir: path.join(scratch, 'web-empty'), args: ['--metadata', etcd.flag, ...etcdArgs({ password: empty })] }),
    /--etcd-password-file: .* is empty/);

  // Plain gRPC to a TLS-only member: the server says what to check, and
  // uploads are refused with a clear 503 rather than hanging.
  const plain = await startWeb({ dataDir: path.join(scratch, 'web-plain'),
    args: ['--metadata', etcd.flag, ...etcdArgs({ tls: false })] });
  try {
    assert.match(plain.log(), /no member answers yet.*do they serve TLS only/);
    const video = await makeTestVideo(path.join(scratch, 'p.mp4'), { width: 160, height: 90, seconds: 1 });
    const res = await uploadFile(plain.url, video, { timeoutMs: 120000 });
    assert.equal(res.status, 503, res.text);
    assert.match(res.json.error, /metadata store \(etcd\) unavailable/);
    // Still serving: its health check names the store it cannot reach.
    const health = await fetch(`${plain.url}/healthz`);
    assert.equal(plain.exited(), null);
    assert.equal(health.status, 503);
  } finally {
    await plain.stop();
  }
});
