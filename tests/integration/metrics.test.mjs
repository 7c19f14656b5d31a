// GET /metrics: Prometheus's text format, counters that move with requests,
// the transcoding and upload readings; request ids in answers and in the
// access log. A real streamgrid-web (--single) and a real transcode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  startWeb, startStorage, makeTestVideo, uploadFile, waitForStatus, tempDir, waitFor, rm,
} from '../lib/streamgrid.mjs';

let scratch;
let web;

before(async () => {
  scratch = await tempDir('streamgrid-metrics-');
  web = await startWeb({ accessLog: true });
});

after(async () => {
  await web?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/**
 * Parses Prometheus's text exposition format (version 0.0.4) strictly enough
 * to catch a malformed line: returns { types: Map<family, type>, samples:
 * [{ name, labels, value }] }.
 */
function parseExposition(text) {
  const types = new Map();
  const samples = [];
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"';
  const sample = new RegExp(`^(${name})(?:\\{((?:${label})(?:,${label})*)?\\})? (\\S+)$`);
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      assert.match(line, new RegExp(`^# HELP ${name} `), line);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = line.match(new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`));
      assert.ok(m, `TYPE line: ${line}`);
      assert.ok(!types.has(m[1]), `one TYPE per family: ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    const m = line.match(sample);
    assert.ok(m, `sample line: ${JSON.stringify(line)}`);
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k] = v.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    }
    // Go's float syntax, as Prometheus reads it: NaN and ±Inf in any case.
    const special = { nan: NaN, '+inf': Infinity, inf: Infinity, '-inf': -Infinity };
    const word = m[3].toLowerCase();
    const value = word in special ? special[word] : Number(m[3]);
    assert.ok(word === 'nan' || !Number.isNaN(value), `value of ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return { types, samples };
}

async function scrape(url = `${web.url}/metrics`) {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  // The web server names the format's version; prometheus-cpp's own server
  // (the storage nodes') says text/plain, which Prometheus takes as the same.
  const type = res.headers.get('content-type');
  assert.match(type, url.startsWith(web.url) ? /^text\/plain; version=0\.0\.4/ : /^text\/plain/);
  return parseExposition(await res.text());
}

/** The value of the sample `name` with exactly these labels (0 when absent). */
function valueOf({ samples }, name, labels = {}) {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = samples.find((s) => s.name === name &&
    JSON.stringify(Object.entries(s.labels).sort()) === want);
  return found ? found.value : 0;
}

test('/metrics is Prometheus text and its request counters move with requests', async () => {
  const first = await scrape();
  assert.equal(first.types.get('streamgrid_transcode_jobs_queued'), 'gauge');
  assert.equal(first.types.get('streamgrid_content_cache_files'), 'gauge');
  const listed = { route: '/api/videos', method: 'GET', code: '200' };
  const before = valueOf(first, 'streamgrid_http_requests_total', listed);
  const missing = { route: 'none', method: 'GET', code: '404' };
  const missingBefore = valueOf(first, 'streamgrid_http_requests_total', missing);

  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${web.url}/api/videos`)).status, 200);
  // Every path nobody serves lands in one series, whatever it is.
  for (const p of ['/no/such/page', '/another-one', '/x?y=z']) {
    assert.equal((await fetch(`${web.url}${p}`)).status, 404);
  }
  // A request is counted once its answer is out: wait for the counts.
  const after = await waitFor(async () => {
    const m = await scrape();
    return valueOf(m, 'streamgrid_http_requests_total', listed) >= before + 3 &&
      valueOf(m, 'streamgrid_http_requests_total', missing) >= missingBefore + 3 && m;
  }, { what: 'the request counters to count the requests' });
  assert.equal(after.types.get('streamgrid_http_requests_total'), 'counter');
  assert.equal(after.types.get('streamgrid_http_request_duration_seconds'), 'histogram');
  assert.equal(valueOf(after, 'streamgrid_http_requests_total', listed), before + 3);
  assert.equal(valueOf(after, 'streamgrid_http_requests_total', missing), missingBefore + 3);
  assert.ok(!after.samples.some((s) => s.labels.route === '/no/such/page'), 'no series per path');
  const latency = { route: '/api/videos', method: 'GET' };
  assert.ok(valueOf(after, 'streamgrid_http_request_duration_seconds_count', latency) >= 3);
  assert.equal(
    valueOf(after, 'streamgrid_http_request_duration_seconds_bucket', { ...latency, le: '+Inf' }),
    valueOf(after, 'streamgrid_http_request_duration_seconds_count', latency));
  assert.ok(valueOf(after, 'streamgrid_http_response_bytes_total', { route: '/api/videos' }) > 0);
  assert.ok(valueOf(after, 'streamgrid_http_connections') >= 0);
});

test('an upload and its transcode show in the metrics', async () => {
  const before = await scrape();
  const ready = valueOf(before, 'streamgrid_transcode_jobs_total', { outcome: 'ready' });
  const file = await makeTestVideo(path.join(scratch, 'clip.mp4'), { seconds: 2 });
  const upload = await uploadFile(web.url, file);
  assert.equal(upload.status, 202, JSON.stringify(upload.json));
  await waitForStatus(web.url, upload.json.id, 'ready');
  // The record says ready a moment before the worker is done with the job
  // (its counts and its slot): wait for both.
  const after = await waitFor(async () => {
    const m = await scrape();
    return valueOf(m, 'streamgrid_transcode_jobs_total', { outcome: 'ready' }) >= ready + 1 &&
      valueOf(m, 'streamgrid_transcode_jobs_running') === 0 && m;
  }, { what: 'the finished job to be counted and its worker free' });
  assert.equal(valueOf(after, 'streamgrid_transcode_jobs_total', { outcome: 'ready' }), ready + 1);
  // The job's time and its wait for a worker, as histograms.
  assert.equal(after.types.get('streamgrid_transcode_job_duration_seconds'), 'histogram');
  assert.equal(valueOf(after, 'streamgrid_transcode_job_duration_seconds_count', { outcome: 'ready' }),
    valueOf(before, 'streamgrid_transcode_job_duration_seconds_count', { outcome: 'ready' }) + 1);
  assert.ok(valueOf(after, 'streamgrid_transcode_job_duration_seconds_sum', { outcome: 'ready' }) > 0);
  assert.equal(valueOf(after, 'streamgrid_transcode_queue_wait_seconds_count'),
    valueOf(before, 'streamgrid_transcode_queue_wait_seconds_count') + 1);
  assert.equal(valueOf(after, 'streamgrid_transcode_jobs_running'), 0);
  assert.equal(valueOf(after, 'streamgrid_uploads_in_progress'), 0);
  assert.ok(valueOf(after, 'streamgrid_http_requests_total',
    { route: '/upload', method: 'POST', code: '202' }) >= 1, 'the upload counted');

  // Served segments fill the content cache, and a second read is a hit.
  const url = `${web.url}/content/${upload.json.id}/manifest.mpd`;
  for (let i = 0; i < 2; i++) assert.equal((await fetch(url)).status, 200);
  const cached = await scrape();
  assert.ok(valueOf(cached, 'streamgrid_content_cache_events_total', { kind: 'hit' }) >= 1);
  assert.ok(valueOf(cached, 'streamgrid_content_cache_files') >= 1);

  // A long poll on the ready video waits (nothing changes) and is counted
  // while it does.
  const tag = (await fetch(`${web.url}/api/videos/${upload.json.id}`)).headers.get('etag');
  const waiting = fetch(`${web.url}/api/videos/${upload.json.id}`,
    { headers: { 'If-None-Match': tag, Prefer: 'wait=30' } });
  await waitFor(async () => valueOf(await scrape(), 'streamgrid_video_waits') === 1,
    { what: 'the long poll to be counted as waiting' });
  // Deleting the video ends the wait at once, and the count.
  assert.equal((await fetch(`${web.url}/api/videos/${upload.json.id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await waiting).status, 404);
  await waitFor(async () => valueOf(await scrape(), 'streamgrid_video_waits') === 0,
    { what: 'no long poll left waiting' });
  assert.equal((await scrape()).types.get('streamgrid_video_waits'), 'gauge');
});

test('answers carry a request id, also written in the access log', async () => {
  const res = await fetch(`${web.url}/api/videos?probe=rid`);
  const id = res.headers.get('x-request-id');
  assert.match(id, /^[A-Za-z0-9._:-]{1,64}$/);
  await waitFor(() => web.log().includes(`rid=${id}`), { what: 'the access log line' });
  const line = web.log().split('\n').find((l) => l.includes(`rid=${id}`));
  assert.match(line, /access 127\.0\.0\.1 "GET \/api\/videos\?probe=rid" 200 \d+ [\d.]+ms rid=/);

  // A load balancer's id is kept, so one request can be followed through both logs.
  const given = await fetch(`${web.url}/healthz`, { headers: { 'X-Request-Id': 'lb-42.a' } });
  assert.equal(given.headers.get('x-request-id'), 'lb-42.a');
  await waitFor(() => web.log().includes('rid=lb-42.a'), { what: 'the given id in the log' });
  // One that could forge log fields is replaced.
  const forged = await fetch(`${web.url}/healthz`, { headers: { 'X-Request-Id': 'a" 500 rid=x' } });
  assert.notEqual(forged.headers.get('x-request-id'), 'a" 500 rid=x');
});

test('a storage node serves its own metrics on --metrics-listen', async () => {
  const dataDir = path.join(scratch, 'node');
  const node = await startStorage({ dataDir, args: ['--metrics-listen', '127.0.0.1:0'] });
  let clusterWeb;
  try {
    assert.match(node.metrics, /^127\.0\.0\.1:\d+$/);
    const url = `http://${node.metrics}/metrics`;
    const idle = await scrape(url);
    assert.equal(idle.types.get('streamgrid_node_files'), 'gauge');
    assert.equal(valueOf(idle, 'streamgrid_node_files'), 0);
    assert.ok(valueOf(idle, 'streamgrid_node_disk_total_bytes') > 0);
    assert.equal(idle.types.get('streamgrid_node_quarantined_total'), 'counter');

    // A web server storing on it (R=1): its calls and files show.
    clusterWeb = await startWeb({
      dataDir: path.join(scratch, 'cluster-web'),
      args: ['--content', `cluster:${node.address}`, '--replication-factor', '1'],
    });
    const file = await makeTestVideo(path.join(scratch, 'node-clip.mp4'), { seconds: 2 });
    const upload = await uploadFile(clusterWeb.url, file);
    assert.equal(upload.status, 202, JSON.stringify(upload.json));
    await waitForStatus(clusterWeb.url, upload.json.id, 'ready');
    const busy = await waitFor(async () => {
      const m = await scrape(url);
      return valueOf(m, 'streamgrid_grpc_server_calls_total', { method: 'Put', code: 'OK' }) > 0 && m;
    }, { what: 'the node to count its Put calls' });
    assert.ok(valueOf(busy, 'streamgrid_node_files') >= 3, 'original, manifest and segments');
    assert.ok(valueOf(busy, 'streamgrid_node_bytes_stored') > 0);
    assert.ok(valueOf(busy, 'streamgrid_grpc_server_call_duration_seconds_count', { method: 'Put' }) > 0);

    // The web server counts its own calls to each node, by node, method and code.
    const fromWeb = await scrape(`${clusterWeb.url}/metrics`);
    const puts = fromWeb.samples.filter((x) => x.name === 'streamgrid_storage_node_calls_total' &&
      x.labels.method === 'Put' && x.labels.code === 'OK');
    assert.equal(puts.length, 1, 'one node, one series');
    assert.ok(puts[0].labels.node, 'named by its node id');
    assert.ok(puts[0].value >= 3, 'original, manifest and segments');
    assert.ok(valueOf(fromWeb, 'streamgrid_storage_node_call_duration_seconds_count',
      { node: puts[0].labels.node, method: 'Put' }) >= puts[0].value);
  } finally {
    await clusterWeb?.stop();
    await node.stop();
  }
});
