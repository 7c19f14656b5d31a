// Follows video records for the pages' scripts (loaded after format.js,
// before them):
//
//   const follow = StreamGrid.followVideo(id, { onRecord, onError });
//   follow.stop();
//
// onRecord(info) gets each new version of GET /api/videos/<id>, and null once
// the video is gone (404, after which the follow ends); returning true ends
// the follow (the video is ready, say). onError(message), optional, hears of
// each failed read; reads go on after a growing pause, which
// follow.retryNow() cuts short (a tab coming back to the foreground).
//
// One request at a time per video, however many scripts follow it (the home
// page's card and upload row share one). After the first read each request
// names the version it has (If-None-Match). Up to MAX_LONG_POLLS videos of the
// page also ask the server to hold the answer until the record changes
// (Prefer: wait), so each change shows at once for one request per change: a
// browser opens about six connections per server, and the uploads and the
// media need the rest. The others, and any server that answers at once, are
// asked every POLL_INTERVAL_MS.
(function () {
  'use strict';

  const ns = (window.StreamGrid = window.StreamGrid || {});
  const POLL_INTERVAL_MS = 2000;
  const MAX_RETRY_DELAY_MS = 15000;
  const MAX_LONG_POLLS = 2;
  const LONG_POLL_SECONDS = 25; // the server holds at most 30 s
  const follows = new Map(); // video id -> its follow
  let longPolls = 0; // under way on this page

  function startFollow(id) {
    const f = { id, listeners: new Set(), etag: null, last: null, failures: 0, timer: 0, abort: null };
    follows.set(id, f);
    schedule(f, 0);
    return f;
  }

  function schedule(f, delay) {
    clearTimeout(f.timer);
    f.timer = setTimeout(() => read(f), delay);
  }

  function end(f) {
    clearTimeout(f.timer);
    if (f.abort) f.abort.abort();
    if (follows.get(f.id) === f) follows.delete(f.id);
  }

  // Calls each listener with `info`; drops those that are done.
  function tell(f, info) {
    for (const listener of Array.from(f.listeners)) {
      let done = false;
      try {
        done = listener.onRecord(info) === true;
      } catch (err) {
        console.error('[streamgrid] ' + (err && err.stack ? err.stack : err));
      }
      if (done) f.listeners.delete(listener);
    }
    if (f.listeners.size === 0 || info === null) end(f);
  }

  async function read(f) {
    const sent = f.etag;
    const long = sent !== null && longPolls < MAX_LONG_POLLS;
    const headers = { Accept: 'application/json' };
    if (sent) headers['If-None-Match'] = sent;
    if (long) headers.Prefer = 'wait=' + LONG_POLL_SECONDS;
    const startedAt = Date.now();
    f.abort = new AbortController();
    if (long) longPolls += 1;
    let status = 0;
    let tag = null;
    let info = null;
    let error = null;
    try {
      const res = await fetch('/api/videos/' + encodeURIComponent(f.id), {
        headers, cache: 'no-store', signal: f.abort.signal,
      });
      status = res.status;
      tag = res.headers.get('ETag');
      if (status === 200) info = await res.json();
      else if (status !== 304 && status !== 404) error = await ns.responseError(res);
    } catch (err) {
      error = String((err && err.message) || err || 'network error');
    } finally {
      if (long) longPolls -= 1;
      f.abort = null;
    }
    if (follows.get(f.id) !== f) return; // stopped meanwhile
    if (error !== null) {
      f.failures += 1;
      for (const listener of f.listeners) if (listener.onError) listener.onError(error);
      schedule(f, Math.min(POLL_INTERVAL_MS * 2 ** f.failures, MAX_RETRY_DELAY_MS));
      return;
    }
    f.failures = 0;
    if (status === 404) {
      tell(f, null);
      return;
    }
    const waited = long && Date.now() - startedAt >= 1000;
    if (status === 200) {
      f.etag = tag;
      if (sent !== null && tag === sent) info = null; // the same version again
    }
    if (info) {
      f.last = info;
      tell(f, info);
      if (follows.get(f.id) !== f) return;
    }
    // At once after the first answer, a held long poll or a change (the next
    // request waits on the server); else after the pause, so that a server
    // that does not wait is never asked in a tight loop.
    const now = f.etag !== null && (sent === null || (long && (waited || info !== null)));
    schedule(f, now ? 0 : POLL_INTERVAL_MS);
  }

  ns.followVideo = function followVideo(id, { onRecord, onError } = {}) {
    const f = follows.get(id) || startFollow(id);
    const listener = { onRecord, onError };
    f.listeners.add(listener);
    // A latecomer gets the version the others have, as they got it.
    if (f.last) {
      const last = f.last;
      setTimeout(() => {
        if (f.listeners.has(listener) && listener.onRecord(last) === true) {
          f.listeners.delete(listener);
          if (f.listeners.size === 0) end(f);
        }
      }, 0);
    }
    return {
      stop() {
        f.listeners.delete(listener);
        if (f.listeners.size === 0) end(f);
      },
      retryNow() {
        if (f.failures > 0 && follows.get(id) === f) schedule(f, 0);
      },
    };
  };
})();
