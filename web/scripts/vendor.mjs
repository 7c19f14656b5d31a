// Copies the browser bundles of the player libraries out of node_modules into
// web/static/vendor/, where the server serves them as /static/vendor/<name>.
// Runs as npm's postinstall hook, so `npm ci` in web/ is the only step needed;
// there is no bundler and no build step. static/vendor/ is git-ignored.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const webDir = dirname(dirname(fileURLToPath(import.meta.url)));
const vendorDir = join(webDir, 'static', 'vendor');
// The root of an installed package, looked up the way Node resolves bare names:
// node_modules/<name> in web/ and then in each parent directory. (dashjs's
// "exports" map hides its package.json and dist/ from require.resolve.)
function packageRoot(name) {
  for (let dir = webDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`package ${name} is not installed; run npm ci in web/`);
  }
}

function version(name) {
  return JSON.parse(readFileSync(join(packageRoot(name), 'package.json'), 'utf8')).version;
}

// [package, path inside the package, name in static/vendor/, required]
const files = [
  ['dashjs', 'dist/modern/umd/dash.all.min.js', 'dash.all.min.js', true],
  ['dashjs', 'dist/modern/umd/dash.all.min.js.map', 'dash.all.min.js.map', false],
  ['dashjs', 'dist/modern/umd/dash.all.min.js.LICENSE.txt', 'dash.all.min.js.LICENSE.txt', false],
  ['dashjs', 'LICENSE.md', 'dashjs.LICENSE.md', true],
  ['hls.js', 'dist/hls.min.js', 'hls.min.js', true],
  ['hls.js', 'dist/hls.min.js.map', 'hls.min.js.map', false],
  // Loaded by URL (hls.js workerPath): the pages' CSP forbids blob: workers.
  ['hls.js', 'dist/hls.worker.js', 'hls.worker.js', true],
  ['hls.js', 'dist/hls.worker.js.map', 'hls.worker.js.map', false],
  ['hls.js', 'LICENSE', 'hls.js.LICENSE.txt', true],
  // The home page's resumable uploads (tus 1.0, /api/uploads).
  ['tus-js-client', 'dist/tus.min.js', 'tus.min.js', true],
  ['tus-js-client', 'dist/tus.min.js.map', 'tus.min.js.map', false],
  ['tus-js-client', 'LICENSE', 'tus-js-client.LICENSE.txt', true],
];

mkdirSync(vendorDir, { recursive: true });
let failed = false;
for (const [pkg, from, to, required] of files) {
  let source;
  try {
    source = join(packageRoot(pkg), from);
  } catch (err) {
    console.error(`vendor: ${err.message}`);
    failed = true;
    continue;
  }
  if (!existsSync(source)) {
    if (required) {
      console.error(`vendor: ${pkg} ${version(pkg)} has no ${from}; update scripts/vendor.mjs`);
      failed = true;
    }
    continue;
  }
  // Copy then rename, so a server running meanwhile never serves half a file.
  const target = join(vendorDir, to);
  const temp = `${target}.tmp-${process.pid}`;
  copyFileSync(source, temp);
  renameSync(temp, target);
}

if (failed) process.exit(1);
console.log(
  `vendor: dash.js ${version('dashjs')}, hls.js ${version('hls.js')} and tus-js-client ` +
    `${version('tus-js-client')} copied to static/vendor/`,
);
