#!/usr/bin/env node
// Writes docs/BENCHMARKS.md and its plots (docs/bench/*.png, gnuplot) from
// the figures of a ./dev bench run (docs/bench/results.json), with the
// "before this issue" figures beside them when docs/bench/baseline-*.json
// exist. Also runnable alone: node bench/report.mjs [RESULTS.json]
import { readdir, readFile, writeFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTimed } from './lib/util.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// The goals of issue 10, each a ratio (or a bound) measured in one run.
export const GOALS = {
  servingRps: { single: 0.9, cluster: 0.8 },  // ours / nginx requests/s, at least
  servingP99: 2,                             // ours / nginx p99, at most
  ingest: { single: 3, cluster: 5 },          // ours / nginx PUT time, at most
  ready: 1.1,                                 // ours / (PUT + plain ffmpeg), at most
  webRssMiB: 150,                             // cache excluded, at most
  storageRssMiB: 64,
  ringMaxOverMean: 1.02,
  ringLookupNs: 250,
  migration: 0.5,                             // ours / cp -r throughput, at least
  firstPlayableS: 10,                         // moonshot: seconds after the upload's last byte
};

const f = (x, digits = 0) => (x == null || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US',
  { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const r2 = (x) => (x == null ? '–' : `${f(x, 2)}×`);
const s = (ms, digits = 1) => (ms == null ? '–' : `${f(ms / 1000, digits)} s`);
const mib = (x) => (x == null ? '–' : `${f(x, 1)} MiB`);
const verdict = (ok) => (ok == null ? 'n/a' : ok ? '**pass**' : '**FAIL**');
const atLeast = (x, goal) => (x == null ? null : x >= goal);
const atMost = (x, goal) => (x == null ? null : x <= goal);

function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

async function gnuplot(script, dir) {
  const file = path.join(dir, `plot-${Math.random().toString(36).slice(2)}.gp`);
  await writeFile(file, script);
  const res = await runTimed('gnuplot', [file], { timeoutMs: 60000 });
  if (res.code !== 0) throw new Error(`gnuplot: ${res.stderr}`);
}

/** Plots of serving (req/s and p99 against connections) for one mode; returns the PNG's name. */
async function plotServing(mode, serving, pngDir, work) {
  const data = path.join(work, `serving-${mode}.dat`);
  await writeFile(data, serving.levels.map((l) =>
    `${l.connections} ${l.ours.rps ?? 'NaN'} ${l.nginx.rps ?? 'NaN'} ${l.ours.p99Ms ?? 'NaN'} ${l.nginx.p99Ms ?? 'NaN'}`)
    .join('\n') + '\n');
  const name = `serving-${mode}.png`;
  await gnuplot(`set terminal pngcairo size 1000,420 font "sans,10"
set output "${path.join(pngDir, name)}"
set multiplot layout 1,2 title "Serving, ${mode === 'single' ? '--single' : 'cluster (3 nodes, R=2)'}: StreamGrid and nginx over the same files"
set logscale x 2
set xlabel "connections"
set key top left
set grid
set yrange [0:*]
set ylabel "requests/s (median)"
plot "${data}" using 1:2 with linespoints lw 2 title "StreamGrid", "" using 1:3 with linespoints lw 2 title "nginx"
set ylabel "p99 latency, ms (median)"
plot "${data}" using 1:4 with linespoints lw 2 title "StreamGrid", "" using 1:5 with linespoints lw 2 title "nginx"
unset multiplot
`, work);
  return name;
}

async function plotReady(ready, pngDir, work) {
  const data = path.join(work, 'ready.dat');
  await writeFile(data, ready.points.map((p) =>
    `${p.seconds} ${(p.oursMs ?? NaN) / 1000} ${(p.refMs ?? NaN) / 1000} ${(p.ffmpegMs ?? NaN) / 1000}`).join('\n') + '\n');
  const name = 'ready.png';
  await gnuplot(`set terminal pngcairo size 700,450 font "sans,10"
set output "${path.join(pngDir, name)}"
set title "Upload -> ready (${ready.mode}), noisy 1080p30 sources"
set xlabel "source length, s"
set ylabel "seconds (median)"
set key top left
set grid
set xrange [0:*]
set yrange [0:*]
plot "${data}" using 1:2 with linespoints lw 2 title "StreamGrid: first byte of the upload to ready", \\
     "" using 1:3 with linespoints lw 2 title "nginx PUT + plain ffmpeg ladder", \\
     "" using 1:4 with linespoints lw 1 dt 2 title "plain ffmpeg ladder alone"
`, work);
  return name;
}

/** The headline ratios of a run, by key (for the before/after table). */
function headline(res) {
  const rows = [];
  for (const mode of ['single', 'cluster']) {
    for (const l of res.serving?.[mode]?.levels || []) {
      rows.push([`serving ${mode}, ${l.connections} conn.: req/s ratio`, l.rpsRatio]);
      rows.push([`serving ${mode}, ${l.connections} conn.: p99 ratio`, l.p99Ratio]);
    }
    if (res.ingest?.[mode]) rows.push([`ingest ${mode}: time ratio to nginx PUT`, res.ingest[mode].ratio]);
  }
  for (const p of res.ready?.points || []) rows.push([`upload -> ready, ${p.seconds} s source: ratio`, p.ratio]);
  for (const mode of ['single', 'cluster']) {
    if (res.memory?.[mode]) rows.push([`memory ${mode}: web max RSS, MiB`, res.memory[mode].webMaxRssMiB]);
  }
  if (res.memory?.cluster) rows.push(['memory cluster: storage node max RSS, MiB', res.memory.cluster.storageMaxRssMiB]);
  if (res.migration) rows.push(['migration: throughput ratio to cp -r', res.migration.throughputRatio]);
  return rows;
}

function quietness(machine) {
  const load = machine.loadavg[0];
  return load < machine.nproc * 0.25 ? 'quiet' :
    `**not quiet** (load ${load} on ${machine.nproc} cores: other work was running, figures are noisy)`;
}

export async function writeReport(res, { docsDir = path.join(repoRoot, 'docs'),
  baselineDir = path.join(repoRoot, 'docs', 'bench') } = {}) {
  const pngDir = path.join(docsDir, 'bench');
  await mkdir(pngDir, { recursive: true });
  const work = await mkdtemp(path.join(tmpdir(), 'streamgrid-bench-plot-'));
  const out = [];
  const summary = [];
  const plotError = (e) => `(plot failed: ${String(e.message || e).slice(0, 200)})`;
  try {
    const o = res.options;
    out.push('# Benchmarks', '',
      'Generated by `./dev bench` (`bench/run.mjs`, how it works: `docs/benchmarking.md`); do not edit by hand.',
      'Every figure of ours is measured beside its reference in the same run, alternating which goes first;',
      'each is the median of the rounds.', '',
      `- Date: ${res.date} (finished ${res.finished ?? '–'}), commit ${res.commit ?? '–'}`,
      `- Machine: ${res.machine.nproc} cores, ${res.machine.cpu}, ${res.machine.memoryGiB} GiB; ` +
      `load average at start ${res.machine.loadavg.join(', ')}: ${quietness(res.machine)}`,
      `- Options: ${o.quick ? '--quick, ' : ''}${o.rounds} round(s), wrk runs of ${o.seconds} s at ` +
      `${o.levels.join('/')} connections, upload -> ready ${o.readyRounds} round(s) for ${o.readyLengths.join('/')} s sources; ` +
      `benchmarks: ${o.only.join(', ')}; modes: ${o.modes.join(', ')}`, '');
    if (res.loads && Object.keys(res.loads).length) {
      out.push(`- 1-minute load average as each step started: ${Object.entries(res.loads)
        .map(([k, v]) => `${k} ${v[0]}`).join('; ')}`, '');
    }
    const notes = [];
    for (const name of ['serving.md', 'ingest.md', 'transcode-pipeline.md']) {
      if (await readFile(path.join(repoRoot, 'docs', name)).then(() => true, () => false)) notes.push(`\`docs/${name}\``);
    }
    if (notes.length) out.push(`What each optimisation bought, measured before and after: ${notes.join(', ')}.`, '');
    if (res.errors?.length) {
      out.push('**Benchmarks that failed in this run:**', '', ...res.errors.map((e) => `- ${e.replace(/\n/g, ' ')}`), '');
    }
    const sections = [];

    // ---- Serving
    for (const mode of ['single', 'cluster']) {
      const sv = res.serving?.[mode];
      if (!sv) continue;
      const goal = GOALS.servingRps[mode];
      const rows = sv.levels.map((l) => [l.connections, f(l.ours.rps), f(l.nginx.rps), r2(l.rpsRatio),
        `≥ ${goal}×`, verdict(atLeast(l.rpsRatio, goal)),
        f(l.ours.p99Ms, 1), f(l.nginx.p99Ms, 1), r2(l.p99Ratio), verdict(atMost(l.p99Ratio, GOALS.servingP99)),
        `${l.ours.errors} / ${l.nginx.errors}`, `${f(l.ours.cpuMsPer1k)} / ${f(l.nginx.cpuMsPer1k)}`]);
      for (const l of sv.levels) {
        summary.push([`Serving ${mode}, ${l.connections} connections: req/s`, f(l.ours.rps), `nginx ${f(l.nginx.rps)}`,
          r2(l.rpsRatio), `≥ ${goal}×`, verdict(atLeast(l.rpsRatio, goal))]);
        summary.push([`Serving ${mode}, ${l.connections} connections: p99`, `${f(l.ours.p99Ms, 1)} ms`,
          `nginx ${f(l.nginx.p99Ms, 1)} ms`, r2(l.p99Ratio), `≤ ${GOALS.servingP99}×`,
          verdict(atMost(l.p99Ratio, GOALS.servingP99))]);
      }
      const top = sv.levels.find((l) => l.connections === 1024);
      if (top) {
        summary.push([`Serving ${mode}, 1024 connections: errors`, String(top.ours.errors), `nginx ${top.nginx.errors}`,
          '–', '0', verdict(top.ours.errors === 0)]);
      }
      let png = '';
      try { png = `![serving ${mode}](bench/${await plotServing(mode, sv, pngDir, work)})`; } catch (e) { png = plotError(e); }
      sections.push(`## Serving, ${mode === 'single' ? '`--single`' : 'cluster (3 etcd, 3 storage nodes, R = 2, 1 web server)'}`, '',
        `wrk (2 threads, random path per request) over the ${sv.files} segment, manifest and playlist files ` +
        `(${f(sv.bytes / 1e6, 1)} MB) of four ready videos; nginx serves copies of the same bytes at the same paths ` +
        '(sendfile on, access log off).', '',
        table(['connections', 'ours req/s', 'nginx req/s', 'ratio', 'goal', '', 'ours p99 ms', 'nginx p99 ms',
          'p99 ratio', '≤ 2×', 'errors ours / nginx', 'CPU ms per 1000 req. ours / nginx'], rows), '',
        'CPU: user + system time of the server side only (web server and storage nodes; nginx master and workers) ' +
        'during the run, per 1000 answered requests; wrk shares the same two cores.', '',
        ...(res.cache?.[mode] ? [`The web server's content cache when it stopped (after every benchmark of this mode): ` +
          `${f(res.cache[mode].bytes / 2 ** 20, 1)} MiB in ${res.cache[mode].files} files, ` +
          `${f(res.cache[mode].hits)} hits, ${f(res.cache[mode].misses)} misses.`, ''] : []),
        png, '');
    }

    // ---- Ingest
    const ingestRows = [];
    for (const mode of ['single', 'cluster']) {
      const ig = res.ingest?.[mode];
      if (!ig) continue;
      const goal = GOALS.ingest[mode];
      const ok = verdict(atMost(ig.ratio, goal));
      // Older result files have no durable reference.
      const floor = ig.floorMs ? [s(ig.floorMs, 2), r2(ig.floorRatio)] : ['–', '–'];
      ingestRows.push([mode, s(ig.oursMs, 2), s(ig.nginxMs, 2), r2(ig.ratio), `≤ ${goal}×`, ok,
        ig.copies ?? '–', ...floor,
        ig.runs.ours.map((x) => s(x, 2)).join(', '), ig.runs.nginx.map((x) => s(x, 2)).join(', '),
        (ig.runs.floor ?? []).map((x) => s(x, 2)).join(', ')]);
      summary.push([`Ingest ${mode}: POST /upload of ${f(ig.bytes / 1e6)} MB`, s(ig.oursMs, 2),
        `nginx PUT ${s(ig.nginxMs, 2)}`, r2(ig.ratio), `≤ ${goal}×`, ok]);
    }
    if (ingestRows.length) {
      const bytes = res.ingest.single?.bytes ?? res.ingest.cluster?.bytes;
      sections.push('## Ingest', '',
        `\`POST /upload\` (curl, multipart, streamed from disk) of the 20 s noisy 1080p30 source (${f(bytes / 1e6)} MB), ` +
        'time until the HTTP answer, against nginx\'s WebDAV `PUT` of the same file. Each upload is deleted right after ' +
        'its answer (which cancels its transcoding) so that the next measurement runs without it.', '',
        'nginx\'s `PUT` only writes to the page cache, while an upload is answered once its copies are durable. ' +
        'The disk floor beside it: the same bytes written as that many copies in parallel on the same disk with ' +
        '`dd bs=1M conv=fsync` (1 in `--single`, R = 2 in cluster), measured in the same rounds; ' +
        'ours / floor says how close to the disk the upload is.', '',
        table(['mode', 'ours', 'nginx PUT', 'ratio', 'goal', '', 'durable copies', 'disk floor', 'ours / floor',
          'ours, each round', 'nginx, each round', 'floor, each round'], ingestRows), '');
    }

    // ---- Upload -> ready
    if (res.ready?.points?.length) {
      const rows = res.ready.points.map((p) => [`${p.seconds} s`, f(p.bytes / 1e6), s(p.oursMs), s(p.uploadMs),
        s(p.playableAfterLastByteMs),
        s(p.putMs, 2), s(p.ffmpegMs), s(p.refMs), r2(p.ratio), `≤ ${GOALS.ready}×`, verdict(atMost(p.ratio, GOALS.ready))]);
      for (const p of res.ready.points) {
        summary.push([`Upload -> ready, ${p.seconds} s 1080p source`, s(p.oursMs), `PUT + ffmpeg ${s(p.refMs)}`,
          r2(p.ratio), `≤ ${GOALS.ready}×`, verdict(atMost(p.ratio, GOALS.ready))]);
      }
      for (const p of res.ready.points) {
        if (p.playableAfterLastByteMs == null) continue;
        summary.push([`Moonshot: first playable after the upload's last byte, ${p.seconds} s source`,
          s(p.playableAfterLastByteMs), '–', '–', `≤ ${GOALS.firstPlayableS} s`,
          verdict(atMost(p.playableAfterLastByteMs / 1000, GOALS.firstPlayableS))]);
      }
      let png = '';
      try { png = `![upload to ready](bench/${await plotReady(res.ready, pngDir, work)})`; } catch (e) { png = plotError(e); }
      const argv = res.ready.points.at(-1)?.argv;
      sections.push(`## Upload -> ready (${res.ready.mode})`, '',
        'From the first byte of `POST /upload` until `GET /api/videos/<id>` says `ready` (followed by long polls: ' +
        '`If-None-Match` with the last answer\'s ETag and `Prefer: wait=30`, each answered when the record changes), ' +
        'after one unmeasured run of each side (the first encode on a fresh stack pays for faulting in memory the VM ' +
        'gave back to its host), against ' +
        'nginx\'s `PUT` of the same file plus one plain ffmpeg run of exactly the ladder StreamGrid runs for it ' +
        '(`bench/ladder_command` prints the transcoder\'s own argv).', '',
        table(['source', 'MB', 'ours', 'of which upload answered', 'first playable after the last byte', 'PUT',
          'plain ffmpeg', 'PUT + ffmpeg', 'ratio', 'goal', ''], rows), '',
        '"First playable": the first answer whose record says `playable` (set once the HLS master playlist is ' +
        'stored), counted ' +
        'from the moment the upload\'s last byte was sent (the moonshot of issue 10: within 10 s, whatever the length).',
        '', png, '',
        ...(argv ? ['The plain ffmpeg command of the last source (paths shortened):', '', '```',
          argv.map((a) => a.replace(/\/tmp\/streamgrid-bench-[^/]+\//g, '…/')).join(' '), '```', ''] : []));
    }

    // ---- Memory
    const memRows = [];
    for (const mode of ['single', 'cluster']) {
      const m = res.memory?.[mode];
      if (!m) continue;
      const cacheMiB = m.cacheBytes != null ? m.cacheBytes / 2 ** 20 : null;
      const webExcl = cacheMiB != null ? m.webMaxRssMiB - cacheMiB : m.webMaxRssMiB;
      const cacheText = cacheMiB != null ? mib(cacheMiB)
        : `not reported${m.servedBytes ? ` (at most the ${f(m.servedBytes / 2 ** 20, 1)} MiB of files served)` : ''}`;
      memRows.push([mode, mib(m.webMaxRssMiB), cacheText, mib(webExcl),
        `≤ ${GOALS.webRssMiB} MiB`, verdict(atMost(webExcl, GOALS.webRssMiB)),
        m.storageMaxRssMiB != null ? mib(m.storageMaxRssMiB) : '–', m.storageMaxRssMiB != null ? verdict(atMost(m.storageMaxRssMiB, GOALS.storageRssMiB)) : '',
        `${f(m.uploadSentBytes / 2 ** 20)} MiB${m.uploadAnsweredEarly ? ` (answered ${JSON.stringify(m.uploadAnsweredEarly)})` : ''}`,
        `${f(m.wrk.rps)} req/s, ${m.wrk.errors} errors`]);
      summary.push([`Memory ${mode}: web server RSS (cache excluded)`, mib(webExcl), '–', '–', `≤ ${GOALS.webRssMiB} MiB`,
        verdict(atMost(webExcl, GOALS.webRssMiB))]);
      if (m.storageMaxRssMiB != null) {
        summary.push([`Memory ${mode}: storage node RSS`, mib(m.storageMaxRssMiB), '–', '–', `≤ ${GOALS.storageRssMiB} MiB`,
          verdict(atMost(m.storageMaxRssMiB, GOALS.storageRssMiB))]);
      }
    }
    for (const mode of ['single', 'cluster']) {
      const pk = res.peaks?.[mode];
      if (!pk) continue;
      memRows.push([`${mode}, peak over the whole run (VmHWM)`, mib(pk.webHwmMiB), '', '', '', '',
        pk.storageHwmMiB != null ? mib(pk.storageHwmMiB) : '–', '', '', '']);
    }
    if (memRows.length) {
      sections.push('## Memory', '',
        'Largest VmRSS (sampled every 100 ms from /proc) while wrk keeps 256 connections busy and a 2 GiB multipart ' +
        'upload (generated as it is sent) is in progress; the upload is abandoned when wrk stops. The cache column is ' +
        'the content cache\'s size as the web server\'s log reports it, when it does (it is subtracted for the goal only then).', '',
        table(['mode', 'web max RSS', 'content cache', 'web excl. cache', 'goal', '', 'storage node max RSS', '≤ 64 MiB',
          'upload sent meanwhile', 'wrk'], memRows), '');
    }

    // ---- Ring
    if (res.ring) {
      const rg = res.ring;
      const medianLookup = rg.lookups.map((l) => l.ns).sort((a, b) => a - b)[rg.lookups.length >> 1];
      summary.push(['Placement: most-loaded / mean, 1,000,000 keys', f(rg.maxOverMean, 4), '–', '–',
        `≤ ${GOALS.ringMaxOverMean}`, verdict(atMost(rg.maxOverMean, GOALS.ringMaxOverMean))]);
      summary.push(['Placement: lookup with hash (median of the configurations)', `${f(medianLookup)} ns`,
        `SHA-256 alone ${f(rg.hashNs)} ns`, '–', `≤ ${GOALS.ringLookupNs} ns`, verdict(atMost(medianLookup, GOALS.ringLookupNs))]);
      sections.push('## Placement', '', '`bench/ring_bench`: balance on 1,000,000 keys (worst of 3–20 equal nodes) and ' +
        'lookups (hash + table) per node count and R.', '',
        table(['figure', 'value'], [
          ['most-loaded / mean, worst, R = 1 / 2 / 3', rg.worstByR ? rg.worstByR.map((x) => f(x, 4)).join(' / ') : '–'],
          ...rg.lookups.map((l) => [l.name.replace('BM_Lookup/', 'lookup '), `${f(l.ns)} ns`]),
          ['key position (SHA-256 of the key)', `${f(rg.hashNs)} ns`]]), '');
    }

    // ---- Migration
    if (res.migration) {
      const mg = res.migration;
      const ok = verdict(atLeast(mg.throughputRatio, GOALS.migration));
      summary.push([`Migration: add a 4th node (${f(mg.bytes / 1e6, 1)} MB moved)`, s(mg.addMs, 2), `cp -r + sync ${s(mg.refMs, 2)}`,
        r2(mg.throughputRatio), `≥ ${GOALS.migration}×`, ok]);
      sections.push('## Migration', '',
        (mg.preloaded ? `\`streamgrid-admin add\` of a fourth storage node to a cluster of its own preloaded with ` +
          `${mg.preloaded.videos} originals (${f(mg.preloaded.bytes / 1e6, 1)} MB, \`--migration-mb\`) ` :
          '`streamgrid-admin add` of a fourth storage node to the cluster above ') +
        '(it waits until the migration is over), ' +
        'against `cp -r` of the files it received, on the same disk, followed by `sync` (the migration\'s copies are ' +
        'durable when it ends). The ratio is throughput: reference time / ours.', '',
        table(['files', 'MB', 'streamgrid-admin add', 'MB/s', 'cp -r', 'sync', 'MB/s', 'throughput ratio', 'goal', ''],
          [[mg.files, f(mg.bytes / 1e6, 1), s(mg.addMs, 2), f(mg.bytes / 1e3 / mg.addMs, 1), s(mg.cpMs, 2),
            s(mg.syncMs, 2), f(mg.bytes / 1e3 / mg.refMs, 1), r2(mg.throughputRatio), `≥ ${GOALS.migration}×`, ok]]), '',
        'At a few hundred MB the migration\'s fixed costs (planning, waiting for older writes to drain, the placement ' +
        'flip, removing surplus copies) weigh as much as the copying: compare MB/s across runs with similar sizes.', '');
    }

    out.push('## Summary', '', table(['benchmark', 'ours', 'reference', 'ratio', 'goal', 'result'], summary), '');
    out.push('Caveats: nginx\'s `PUT` does not fsync while StreamGrid makes an upload durable before answering; ' +
      'the `cp -r` reference of migration is followed by `sync`; wrk runs on the same two cores as the servers, ' +
      'so requests/s of the faster side is partly capped by the client (the CPU per request column is not); ' +
      `upload -> ready ran ${o.readyRounds} round(s) per source length.`, '');
    out.push(...sections);

    // ---- Before this issue
    const baselines = (await readdir(baselineDir).catch(() => [])).filter((n) => /^baseline-[\w-]+\.json$/.test(n)).sort();
    for (const name of baselines) {
      const base = JSON.parse(await readFile(path.join(baselineDir, name), 'utf8'));
      const now = new Map(headline(res));
      const rows = headline(base).map(([what, before]) => [what, f(before, before != null && before < 10 ? 3 : 1),
        now.has(what) ? f(now.get(what), now.get(what) != null && now.get(what) < 10 ? 3 : 1) : '–']);
      out.push(`## Before this issue (${name})`, '',
        `The same benchmarks on commit ${base.commit} (${base.date}, ${base.options.quick ? '--quick' : 'full'}, ` +
        `load average at start ${base.machine.loadavg.join(', ')}: ${quietness(base.machine)}), beside this run.`, '',
        table(['figure', 'before', 'this run'], rows), '');
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const doc = path.join(docsDir, 'BENCHMARKS.md');
  await writeFile(doc, out.join('\n'));
  return doc;
}

// node bench/report.mjs [RESULTS.json]: the report again from saved figures.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] || path.join(repoRoot, 'docs', 'bench', 'results.json');
  const res = JSON.parse(await readFile(file, 'utf8'));
  console.log(await writeReport(res));
}
