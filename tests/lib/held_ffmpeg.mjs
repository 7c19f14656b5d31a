// Shared set-up of the tests that watch a transcode while it runs: a 3-node
// cluster (R = 2) and a web server whose ffmpeg is the real one behind a
// wrapper first on its PATH. The wrapper notes every run, may read the ladder
// run's input at real-time speed, and after the ladder encode (the run that
// writes manifest.mpd) holds on until the test releases it (three minutes at
// most), so the video is still `processing` whatever the machine's speed.
// Other programs (ffprobe) may be wrapped beside it.
import assert from 'node:assert/strict';
import { access, chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startWeb, startStorage, run, writeFile, readFile } from './streamgrid.mjs';

async function exists(file) {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `program` on this PATH. */
async function which(program) {
  const found = (await run('sh', ['-c', `command -v ${program}`])).trim();
  assert.ok(found.startsWith('/'), `${program} found at ${found}`);
  return found;
}

/**
 * Writes the held ffmpeg wrapper into `binDir` (created). `realtime`: the
 * ladder run reads its input at its own frame rate (-re), so the encode takes
 * as long as the video. `hold` (default true): the ladder run waits for
 * release() before it exits; false: it exits as the real one does (the
 * wrapper then only notes runs). `wrappers`: more programs to wrap, by name,
 * each the shell lines to run before the real program (e.g. { ffprobe:
 * [...] }). Returns { env, release(), encoded(), runs() }: env puts the
 * wrappers first on a server's PATH; release() lets the held ladder run exit;
 * encoded() says whether the ladder encode is over (held or not); runs()
 * lists the ffmpeg runs, one line of arguments each.
 */
export async function installHeldFfmpeg(binDir, { realtime = false, hold = true, wrappers = {} } = {}) {
  await mkdir(binDir, { recursive: true });
  const realFfmpeg = await which('ffmpeg');
  const wrapper = path.join(binDir, 'ffmpeg');
  await writeFile(wrapper, [
    '#!/bin/sh',
    `echo "$*" >> '${binDir}/runs.log'`,
    'case "$*" in *manifest.mpd*)',
    // -re before the first input: read it at its own frame rate.
    `  '${realFfmpeg}' ${realtime ? '-re ' : ''}"$@"; rc=$?`,
    `  touch '${binDir}/encoded'`,
    ...(hold ? [`  i=0; while [ ! -e '${binDir}/release' ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i+1)); done`] : []),
    '  exit $rc ;;',
    'esac',
    `exec '${realFfmpeg}' "$@"`,
    '',
  ].join('\n'));
  await chmod(wrapper, 0o755);
  for (const [program, lines] of Object.entries(wrappers)) {
    const file = path.join(binDir, program);
    await writeFile(file, ['#!/bin/sh', ...lines, `exec '${await which(program)}' "$@"`, ''].join('\n'));
    await chmod(file, 0o755);
  }
  return {
    env: { PATH: `${binDir}:${process.env.PATH}` },
    release: () => writeFile(path.join(binDir, 'release'), 'go'),
    encoded: () => exists(path.join(binDir, 'encoded')),
    async runs() {
      try {
        return (await readFile(path.join(binDir, 'runs.log'), 'utf8')).split('\n').filter(Boolean);
      } catch (e) {
        if (e.code === 'ENOENT') return [];
        throw e;
      }
    },
  };
}

/**
 * Starts three storage nodes and a web server over them (R = 2) under
 * `scratch`, with the held ffmpeg in `scratch`/bin (options as
 * installHeldFfmpeg's). Returns { nodes, web, stop(), release(), encoded(),
 * runs() }; stop() stops the web server and the nodes.
 */
export async function startHeldFfmpegCluster(scratch, options = {}) {
  const ffmpeg = await installHeldFfmpeg(path.join(scratch, 'bin'), options);
  const nodes = [];
  let web;
  const stop = async () => {
    await web?.stop();
    for (const node of nodes) await node.stop();
  };
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(await startStorage({ dataDir: path.join(scratch, `node${i}`) }));
    }
    web = await startWeb({
      dataDir: path.join(scratch, 'web'),
      args: ['--content', `cluster:${nodes.map((n) => n.address).join(',')}`,
        '--replication-factor', '2',
        // An ffprobe wrapper acts on the upload's probe only if the server
        // runs ffprobe for it rather than its probe helper.
        ...(options.wrappers?.ffprobe ? ['--probe-helper', 'none'] : [])],
      env: ffmpeg.env,
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { ...ffmpeg, nodes, web, stop };
}
