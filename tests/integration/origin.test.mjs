// Browser-facing writes against a real streamgrid-web: cross-origin uploads and
// deletes refused, reads open to every origin, preflight rules, the API token
// mode, security headers, and stored files never served as something a browser
// would run.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { openAsBlob } from 'node:fs';
import path from 'node:path';
import { startWeb, makeTestVideo, tempDir, waitForStatus } from '../lib/streamgrid.mjs';

const ALLOWED = 'https://player.example.test';
const FOREIGN = 'https://evil.example';

let scratch;
let clip;

before(async () => {
  scratch = await tempDir();
  clip = await makeTestVideo(path.join(scratch, 'clip.mp4'), { seconds: 1, width: 160, height: 90, audio: false });
});

/** POST /upload of the test clip with extra headers; { status, json, headers }. */
async function upload(url, headers = {}) {
  const form = new FormData();
  form.append('file', await openAsBlob(clip), 'clip.mp4');
  const res = await fetch(`${url}/upload`, {
    method: 'POST', body: form, headers: { Accept: 'application/json', ...headers }, redirect: 'manual',
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, headers: res.headers };
}

async function del(url, id, headers = {}) {
  const res = await fetch(`${url}/api/videos/${id}`, { method: 'DELETE', headers });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, headers: res.headers };
}

async function videoIds(url) {
  const res = await fetch(`${url}/api/videos?limit=1000`);
  assert.equal(res.status, 200);
  return (await res.json()).videos.map((v) => v.id).sort();
}

/** Every file under the server's content store and upload spool. */
async function storedFiles(dataDir) {
  const found = [];
  for (const dir of ['content', 'work/uploads']) {
    try {
      found.push(...(await readdir(path.join(dataDir, dir), { recursive: true })).map((e) => path.join(dir, e)));
    } catch { /* not created yet */ }
  }
  return found.sort();
}

function assertRefused(reply, status, what) {
  assert.equal(reply.status, status, `${what}: ${JSON.stringify(reply.json)}`);
  assert.equal(typeof reply.json?.error, 'string', `${what}: JSON error`);
  assert.ok(reply.json.error.length > 0, `${what}: message`);
  assert.equal(reply.headers.get('access-control-allow-origin'), null, `${what}: no CORS grant`);
  assert.equal(reply.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
}

describe('origin rules', () => {
  let web;
  let id; // a stored video the refused requests must leave alone

  before(async () => {
    web = await startWeb({ args: ['--allowed-origins', `${ALLOWED}, http://localhost:1`] });
    const up = await upload(web.url);
    assert.equal(up.status, 202, JSON.stringify(up.json));
    id = up.json.id;
    await waitForStatus(web.url, id, 'ready');
  });

  after(async () => {
    await web?.stop();
  });

  test('cross-origin DELETE is refused with 403 and deletes nothing', async () => {
    const before = await storedFiles(web.dataDir);
    for (const headers of [{ Origin: FOREIGN }, { Origin: 'null' },
      { Origin: web.url.replace(/:(\d+)$/, (_, p) => `:${Number(p) + 1}`) },
      { Origin: web.url.replace('http://', 'http://evil.') },
      { 'Sec-Fetch-Site': 'cross-site' }]) {
      const reply = await del(web.url, id, headers);
      assertRefused(reply, 403, `DELETE with ${JSON.stringify(headers)}`);
      assert.match(reply.json.error, /cross-origin/);
    }
    assert.equal((await fetch(`${web.url}/api/videos/${id}`)).status, 200, 'video still there');
    assert.deepEqual(await storedFiles(web.dataDir), before, 'no file removed');
  });

  test('cross-origin upload is refused with 403 and stores nothing', async () => {
    const ids = await videoIds(web.url);
    const files = await storedFiles(web.dataDir);
    for (const headers of [{ Origin: FOREIGN }, { Origin: 'null' }, { 'Sec-Fetch-Site': 'cross-site' }]) {
      const reply = await upload(web.url, headers);
      assertRefused(reply, 403, `upload with ${JSON.stringify(headers)}`);
    }
    assert.deepEqual(await videoIds(web.url), ids, 'no video created');
    assert.deepEqual(await storedFiles(web.dataDir), files, 'nothing stored or spooled');
  });

  test('writes from no origin, the server\'s own and an allow-listed one are allowed', async () => {
    // No Origin: curl and scripts.
    const plain = await upload(web.url);
    assert.equal(plain.status, 202, JSON.stringify(plain.json));
    // Same origin, as the server's own page sends it (fetch sets Host from the URL).
    const same = await upload(web.url, { Origin: web.url, 'Sec-Fetch-Site': 'same-origin' });
    assert.equal(same.status, 202, JSON.stringify(same.json));
    assert.equal(same.headers.get('access-control-allow-origin'), null, 'same origin needs no grant');
    const listed = await upload(web.url, { Origin: ALLOWED });
    assert.equal(listed.status, 202, JSON.stringify(listed.json));
    assert.equal(listed.headers.get('access-control-allow-origin'), ALLOWED);
    assert.match(listed.headers.get('vary'), /Origin/);

    const removedPlain = await del(web.url, plain.json.id);
    assert.equal(removedPlain.status, 204);
    const removedSame = await del(web.url, same.json.id, { Origin: web.url });
    assert.equal(removedSame.status, 204);
    const removedListed = await del(web.url, listed.json.id, { Origin: ALLOWED });
    assert.equal(removedListed.status, 204);
    assert.equal(removedListed.headers.get('access-control-allow-origin'), ALLOWED);
    for (const gone of [plain, same, listed]) {
      assert.equal((await fetch(`${web.url}/api/videos/${gone.json.id}`)).status, 404);
    }
  });

  test('reads stay open to every origin', async () => {
    for (const p of ['/healthz', '/api/videos', `/api/videos/${id}`, `/content/${id}/manifest.mpd`,
      `/content/${id}/master.m3u8`, `/content/${id}/nope.m4s`]) {
      const res = await fetch(`${web.url}${p}`, { headers: { Origin: FOREIGN } });
      await res.arrayBuffer();
      assert.equal(res.headers.get('access-control-allow-origin'), '*', p);
    }
  });

  test('preflights: reads granted to all, writes only to trusted origins', async () => {
    const preflight = (origin, method, headers = 'content-type') => fetch(`${web.url}/api/videos/${id}`, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': headers },
    });
    const read = await preflight(FOREIGN, 'GET', 'range');
    assert.equal(read.status, 204);
    assert.equal(read.headers.get('access-control-allow-origin'), '*');
    assert.match(read.headers.get('access-control-allow-methods'), /GET/);
    assert.doesNotMatch(read.headers.get('access-control-allow-methods'), /DELETE|POST/);

    for (const method of ['DELETE', 'POST', 'PUT']) {
      const foreign = await preflight(FOREIGN, method);
      await foreign.arrayBuffer();
      assert.notEqual(foreign.status, 204, `${method} preflight from a foreign origin`);
      assert.equal(foreign.headers.get('access-control-allow-origin'), null, method);
      assert.equal(foreign.headers.get('access-control-allow-methods'), null, method);
    }
    const fromNull = await preflight('null', 'DELETE');
    assert.equal(fromNull.headers.get('access-control-allow-origin'), null);

    const listed = await preflight(ALLOWED, 'DELETE', 'authorization');
    assert.equal(listed.status, 204);
    assert.equal(listed.headers.get('access-control-allow-origin'), ALLOWED);
    assert.match(listed.headers.get('access-control-allow-methods'), /DELETE/);
    assert.match(listed.headers.get('access-control-allow-headers'), /Authorization/i);
    assert.match(listed.headers.get('vary'), /Origin/);
  });

  test('nosniff on every answer, CSP and Referrer-Policy on pages', async () => {
    for (const p of ['/healthz', '/api/videos', '/no/such/page', `/content/${id}/manifest.mpd`,
      `/content/${id}/thumbnail.jpg`, `/content/${id}/missing.m4s`, '/static/player.js',
      '/static/style.css', '/', `/videos/${id}`, '/videos/01jzzzzzzzzzzzzzzzzzzzzzzz']) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${web.url}${p}`, { method });
        await res.arrayBuffer();
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${method} ${p}`);
      }
    }
    const deleteUnknown = await del(web.url, '01jzzzzzzzzzzzzzzzzzzzzzzz');
    assert.equal(deleteUnknown.status, 404);
    assert.equal(deleteUnknown.headers.get('x-content-type-options'), 'nosniff');
    for (const p of ['/', `/videos/${id}`, '/videos/01jzzzzzzzzzzzzzzzzzzzzzzz']) {
      const res = await fetch(`${web.url}${p}`);
      const html = await res.text();
      assert.match(res.headers.get('content-type'), /^text\/html/, p);
      const csp = res.headers.get('content-security-policy');
      assert.ok(csp, `CSP on ${p}`);
      for (const directive of ["default-src 'self'", "script-src 'self'", "object-src 'none'",
        "base-uri 'none'", "frame-ancestors 'none'"]) {
        assert.ok(csp.includes(directive), `${directive} in the CSP of ${p}: ${csp}`);
      }
      assert.match(csp, /media-src[^;]*blob:/, 'MSE players need blob: media');
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.ok(res.headers.get('referrer-policy'), `Referrer-Policy on ${p}`);
      // The CSP allows no inline code, so the templates must have none.
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, `no inline script in ${p}`);
      assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, `no inline style or handler in ${p}`);
    }
  });

  test('content is served only as media, playlist or image types', async () => {
    const expected = {
      'manifest.mpd': 'application/dash+xml',
      'master.m3u8': 'application/vnd.apple.mpegurl',
      'thumbnail.jpg': 'image/jpeg',
    };
    for (const [name, type] of Object.entries(expected)) {
      const res = await fetch(`${web.url}/content/${id}/${name}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, name);
      assert.equal(res.headers.get('content-type'), type, name);
      assert.equal(res.headers.get('content-disposition'), null, name);
    }
    // Files nothing of ours writes, planted straight into the content store.
    const dir = path.join(web.dataDir, 'content', id);
    const planted = {
      'x.html': '<!doctype html><script>alert(document.domain)</script>',
      'x.svg': '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
      'x.js': 'alert(1)',
      'x.xml': '<x/>',
      'x.txt': '<script>alert(1)</script>',
    };
    for (const [name, body] of Object.entries(planted)) {
      await writeFile(path.join(dir, name), body);
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${web.url}/content/${id}/${name}`, { method });
        const text = await res.text();
        assert.equal(res.status, 200, name);
        assert.equal(res.headers.get('content-type'), 'application/octet-stream', `${method} ${name}`);
        assert.match(res.headers.get('content-disposition'), /^attachment/, `${method} ${name}`);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', name);
        assert.match(res.headers.get('content-security-policy') || '', /sandbox/, name);
        if (method === 'GET') assert.equal(text, body, 'served as the bytes stored');
      }
    }
    // The original upload is a download.
    const original = await fetch(`${web.url}/content/${id}/original`);
    const bytes = Buffer.from(await original.arrayBuffer());
    assert.equal(original.status, 200);
    assert.equal(original.headers.get('content-type'), 'application/octet-stream');
    assert.match(original.headers.get('content-disposition'), /^attachment/);
    assert.ok(bytes.length > 0);
  });
});

describe('API token mode', () => {
  let web;
  let tokenFile;
  const TOKEN = 'tok-' + Math.random().toString(36).slice(2) + '-' + Date.now();

  before(async () => {
    const dir = await tempDir('streamgrid-token-');
    tokenFile = path.join(dir, 'api-token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    web = await startWeb({ args: ['--api-token-file', tokenFile, '--allowed-origins', ALLOWED] });
  });

  after(async () => {
    await web?.stop();
  });

  test('writes without the right token are 401 and change nothing', async () => {
    const ids = await videoIds(web.url);
    for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: `Bearer ${TOKEN}x` },
      { Authorization: `Basic ${TOKEN}` }, { Authorization: TOKEN }]) {
      const reply = await upload(web.url, headers);
      assertRefused(reply, 401, `upload with ${JSON.stringify(headers)}`);
      assert.match(reply.headers.get('www-authenticate') || '', /^Bearer/);
    }
    assert.deepEqual(await videoIds(web.url), ids);
    const spool = (await storedFiles(web.dataDir)).filter((f) => f.startsWith('work/uploads/'));
    assert.deepEqual(spool, [], 'nothing spooled');
  });

  test('the right token works; reads need none; foreign origins stay refused', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const up = await upload(web.url, auth);
    assert.equal(up.status, 202, JSON.stringify(up.json));
    const id = up.json.id;
    // Reads: no token.
    assert.equal((await fetch(`${web.url}/api/videos/${id}`)).status, 200);
    assert.equal((await fetch(`${web.url}/api/videos`)).status, 200);
    assert.equal((await fetch(`${web.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${web.url}/`)).status, 200);

    assertRefused(await del(web.url, id), 401, 'DELETE without token');
    assertRefused(await del(web.url, id, { Authorization: 'Bearer nope' }), 401, 'DELETE with wrong token');
    assertRefused(await del(web.url, id, { ...auth, Origin: FOREIGN }), 403, 'DELETE from a foreign origin');
    assert.equal((await fetch(`${web.url}/api/videos/${id}`)).status, 200, 'still there');
    const removed = await del(web.url, id, { ...auth, Origin: ALLOWED });
    assert.equal(removed.status, 204);
    assert.equal((await fetch(`${web.url}/api/videos/${id}`)).status, 404);
  });
});

describe('start-up checks', () => {
  test('bad --allowed-origins and --api-token-file stop the server with a clear message', async () => {
    const dir = await tempDir('streamgrid-badflags-');
    const empty = path.join(dir, 'empty');
    await writeFile(empty, '\n', { mode: 0o600 });
    const open = path.join(dir, 'world-readable');
    await writeFile(open, 'secret\n');
    await chmod(open, 0o644);
    await mkdir(path.join(dir, 'data'), { recursive: true });
    const cases = [
      [['--allowed-origins', '*'], /--allowed-origins: '\*' is not an origin/],
      [['--allowed-origins', 'https://ok.example/'], /is not an origin/],
      [['--api-token-file', empty], /--api-token-file: .*empty/],
      [['--api-token-file', open], /--api-token-file: .*chmod 600/],
      [['--api-token-file', path.join(dir, 'missing')], /--api-token-file: .*No such file/],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(startWeb({ dataDir: path.join(dir, 'data'), args }), message, args.join(' '));
    }
  });
});
