// Placement: the existing ring_bench (balance report and lookup timings).
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { buildDir } from '../../tests/lib/streamgrid.mjs';
import { log, runChecked } from './util.mjs';

export async function benchRing(dir) {
  log('ring: bench/ring_bench');
  const out = path.join(dir, 'ring.json');
  const res = await runChecked(path.join(buildDir, 'bench/ring_bench'), [
    '--benchmark_filter=BM_Lookup/|BM_KeyPosition$', `--benchmark_out=${out}`,
    '--benchmark_out_format=json', '--benchmark_min_time=0.2'], { timeoutMs: 600000 });
  const worst = /worst: R=1 ([\d.]+), R=2 ([\d.]+), R=3 ([\d.]+)/.exec(res.stdout);
  const json = JSON.parse(await readFile(out, 'utf8'));
  await rm(out, { force: true });
  const lookups = json.benchmarks.filter((b) => b.name.startsWith('BM_Lookup/'))
    .map((b) => ({ name: b.name, ns: b.real_time }));
  const hash = json.benchmarks.find((b) => b.name === 'BM_KeyPosition');
  return {
    maxOverMean: worst ? Math.max(Number(worst[1]), Number(worst[2]), Number(worst[3])) : null,
    worstByR: worst ? worst.slice(1).map(Number) : null,
    lookupMaxNs: lookups.length ? Math.max(...lookups.map((l) => l.ns)) : null,
    lookups, hashNs: hash ? hash.real_time : null,
  };
}
