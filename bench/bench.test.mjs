// Tests of ./dev bench's own parts that need no benchmark packages: wrk
// report parsing, the report writer, and bench/ladder_command against real
// ffprobe/ffmpeg (its argv must be the transcoder's and must run). Part of
// ./dev test (ctest bench.tools); the benchmarks themselves are not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { buildDir, makeTestVideo, tempDir } from '../tests/lib/streamgrid.mjs';
import { parseWrk } from './lib/wrk.mjs';
import { median, ratio, runChecked } from './lib/util.mjs';
import { writeReport } from './report.mjs';

const WRK_OUTPUT = `Running 10s test @ http://127.0.0.1:8080
  2 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    25.10ms   10.20ms 300.00ms   90.00%
    Req/Sec     5.00k   300.00     6.00k    70.00%
  Latency Distribution
     50%   20.50ms
     75%   28.00ms
     90%   40.00ms
     99%    1.20s
  99786 requests in 10.00s, 900.00MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   9978.60
Transfer/sec:     90.00MB
`;

test('parseWrk reads requests/s, percentiles in any unit and every kind of error', () => {
  const r = parseWrk(WRK_OUTPUT);
  assert.equal(r.rps, 9978.6);
  assert.equal(r.p50Ms, 20.5);
  assert.equal(r.p99Ms, 1200);
  assert.equal(r.requests, 99786);
  assert.equal(r.socketErrors, 6);
  assert.equal(r.non2xx, 4);
  assert.equal(r.errors, 10);
  const clean = parseWrk(WRK_OUTPUT.replace(/ {2}Socket errors.*\n/, '').replace(/ {2}Non-2xx.*\n/, '')
    .replace('1.20s', '850.00us'));
  assert.equal(clean.errors, 0);
  assert.equal(clean.p99Ms, 0.85);
});

test('median and ratio', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), null);
  assert.equal(ratio(1, 3), 0.333);
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(null, 2), null);
});

test('the report has a summary row per goal with pass or FAIL', async () => {
  const dir = await tempDir('streamgrid-bench-report-');
  try {
    const level = (connections, ours, nginx, errors = 0) => ({ connections,
      ours: { rps: ours, p99Ms: 10, errors }, nginx: { rps: nginx, p99Ms: 8, errors: 0 },
      rpsRatio: ratio(ours, nginx), p99Ratio: ratio(10, 8) });
    const res = {
      date: '2026-01-01T00:00:00Z', finished: '2026-01-01T00:10:00Z', commit: 'abc',
      machine: { nproc: 2, cpu: 'test cpu', memoryGiB: 4, loadavg: [0.1, 0.1, 0.1] },
      options: { quick: false, rounds: 3, readyRounds: 1, seconds: 10, levels: [64, 1024],
        only: ['serving', 'ingest'], modes: ['single'], readyLengths: [5] },
      serving: { single: { files: 60, bytes: 5e6, levels: [level(64, 9500, 10000), level(1024, 5000, 10000, 7)] } },
      ingest: { single: { bytes: 2.8e8, oursMs: 1000, nginxMs: 500, ratio: 2, runs: { ours: [1000], nginx: [500] } } },
      memory: {}, ready: null, ring: null, migration: null, errors: [],
    };
    const doc = await writeReport(res, { docsDir: dir, baselineDir: dir });
    const text = await readFile(doc, 'utf8');
    assert.match(text, /\| Serving single, 64 connections: req\/s \| 9,500 \| nginx 10,000 \| 0\.95× \| ≥ 0\.9× \| \*\*pass\*\* \|/);
    assert.match(text, /\| Serving single, 1024 connections: req\/s \| 5,000 \| nginx 10,000 \| 0\.50× \| ≥ 0\.9× \| \*\*FAIL\*\* \|/);
    assert.match(text, /\| Serving single, 1024 connections: errors \| 7 \| nginx 0 \| – \| 0 \| \*\*FAIL\*\* \|/);
    assert.match(text, /\| Ingest single: POST \/upload of 280 MB \| 1\.00 s \| nginx PUT 0\.50 s \| 2\.00× \| ≤ 3× \| \*\*pass\*\* \|/);
    assert.match(text, /load average at start 0\.1, 0\.1, 0\.1: quiet/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ladder_command prints a runnable argv: the transcoder\'s DASH + HLS ladder', async () => {
  const dir = await tempDir('streamgrid-bench-ladder-');
  try {
    const source = await makeTestVideo(path.join(dir, 'in.mp4'), { width: 640, height: 360, seconds: 2 });
    const out = path.join(dir, 'out');
    await mkdir(out);
    const { stdout } = await runChecked(path.join(buildDir, 'bench/ladder_command'), [source, out]);
    const argv = JSON.parse(stdout);
    assert.ok(Array.isArray(argv) && argv.every((a) => typeof a === 'string'));
    assert.equal(argv[0], 'ffmpeg');
    assert.ok(argv.includes('-format_whitelist'), 'the source is read as an allowed format only');
    assert.equal(argv[argv.indexOf('-f', argv.indexOf('-filter_complex')) + 1], 'dash');
    await runChecked(argv[0], argv.slice(1), { timeoutMs: 120000 });
    const files = await readdir(out);
    for (const name of ['manifest.mpd', 'master.m3u8']) assert.ok(files.includes(name), `${name} in ${files}`);
    assert.ok(files.some((f) => /^chunk-0-\d{5}\.m4s$/.test(f)), `segments in ${files}`);
    const withThumbnail = JSON.parse((await runChecked(path.join(buildDir, 'bench/ladder_command'),
      ['--with-thumbnail', source, out])).stdout);
    assert.ok(withThumbnail.length > argv.length, 'the transcoder\'s own argv adds the thumbnail outputs');
    const bad = await runChecked(path.join(buildDir, 'bench/ladder_command'), [path.join(dir, 'none.mp4'), out])
      .then(() => null, (e) => e);
    assert.ok(bad, 'a missing source is refused');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the content cache size is found in the web server log, in either wording', async () => {
  const { cacheBytesFromLog } = await import('./lib/memory.mjs');
  assert.equal(cacheBytesFromLog('[info] content cache: 5405090 bytes in 60 files, 9 hits, 2 misses\n'), 5405090);
  assert.equal(cacheBytesFromLog('cache stats bytes=1234 entries=3\n'), 1234);
  assert.equal(cacheBytesFromLog('[info] accepted upload x (1000 bytes) as video y\n'), null);
});
