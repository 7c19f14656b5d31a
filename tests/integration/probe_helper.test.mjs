// The probe helper (streamgrid-probe) in a real streamgrid-web: uploads are
// described by it, not by an ffprobe run, so a server whose PATH has ffmpeg
// but no ffprobe still accepts a video and refuses a playlist with the usual
// message; with --probe-helper none it falls back to ffprobe (and here, with
// none on PATH, cannot describe the upload). The helpers die with the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  startWeb, makeTestVideo, uploadFile, tempDir, waitFor, waitForStatus, run, rm,
} from '../lib/streamgrid.mjs';

let scratch;
let noFfprobePath;  // a PATH with ffmpeg and nothing else
let video;

before(async () => {
  scratch = await tempDir('streamgrid-probe-helper-');
  const bin = path.join(scratch, 'bin');
  await mkdir(bin);
  const ffmpeg = (await run('sh', ['-c', 'command -v ffmpeg'])).trim();
  await symlink(ffmpeg, path.join(bin, 'ffmpeg'));
  noFfprobePath = bin;
  video = await makeTestVideo(path.join(scratch, 'clip.mp4'), { seconds: 2, width: 320, height: 180 });
});

after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// Process ids of streamgrid-probe helpers whose parent is `pid`.
async function helpersOf(pid) {
  const found = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (ppid === pid && cmdline.includes('streamgrid-probe')) found.push(Number(entry));
    } catch { /* gone meanwhile */ }
  }
  return found;
}

async function alive(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) Z/.test(stat);  // a zombie is dead
  } catch {
    return false;
  }
}

test('uploads are described without ffprobe: a video is accepted and becomes ready', async () => {
  const web = await startWeb({ env: { PATH: noFfprobePath } });
  try {
    assert.ok((await helpersOf(web.process.pid)).length >= 1, 'a helper runs from the start');
    const res = await uploadFile(web.url, video);
    assert.equal(res.status, 202, res.text);
    await waitForStatus(web.url, res.json.id);
  } finally {
    await web.stop();
  }
});

test('a playlist is refused by the helper with the usual message', async () => {
  const web = await startWeb({ env: { PATH: noFfprobePath } });
  try {
    const playlist = path.join(scratch, 'innocent.mp4');
    await writeFile(playlist,
      `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n${video}\n#EXT-X-ENDLIST\n`);
    const res = await uploadFile(web.url, playlist);
    assert.equal(res.status, 415, res.text);
    assert.match(res.json.error, /HLS playlist/);
    assert.ok(!res.json.error.includes(scratch), res.json.error);
    const text = path.join(scratch, 'notes.mp4');
    await writeFile(text, 'not a video\n');
    const notMedia = await uploadFile(web.url, text);
    assert.ok(notMedia.status >= 400 && notMedia.status < 500, notMedia.text);
    assert.match(notMedia.json.error, /not a video/);
  } finally {
    await web.stop();
  }
});

test('--probe-helper none runs ffprobe for each upload', async () => {
  const web = await startWeb({ args: ['--probe-helper', 'none'], env: { PATH: noFfprobePath } });
  try {
    assert.deepEqual(await helpersOf(web.process.pid), []);
    const res = await uploadFile(web.url, video);
    // No ffprobe on this PATH: the server cannot describe the upload.
    assert.notEqual(res.status, 202, res.text);
    assert.match(res.json.error, /ffprobe/);
  } finally {
    await web.stop();
  }
});

test('a missing helper program falls back to ffprobe', async () => {
  const web = await startWeb({ args: ['--probe-helper', path.join(scratch, 'no-such-probe')] });
  try {
    const res = await uploadFile(web.url, video);
    assert.equal(res.status, 202, res.text);
  } finally {
    await web.stop();
  }
});

test('the helpers die with a killed server', async () => {
  const web = await startWeb();
  const helpers = await helpersOf(web.process.pid);
  assert.ok(helpers.length >= 1);
  await web.kill();
  for (const pid of helpers) {
    await waitFor(async () => !(await alive(pid)), { what: `helper ${pid} to exit` });
  }
});
