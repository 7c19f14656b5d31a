// StreamGrid upload panel: resumable uploads (tus 1.0 at /api/uploads) of
// several files at once, chosen with the picker or dropped on the panel.
//
// Without JavaScript (or without tus-js-client) the form posts one file to
// /upload and the server answers 303 to the video's page. With it, each file
// gets a row: a progress bar with bytes, speed and time left while it is sent,
// then "Processing N%" (StreamGrid.followVideo, follow.js: shared with the
// video's card, answered as the record changes), then a "Watch" link.
// tus-js-client keeps each upload's URL in localStorage (its fingerprint of the
// file), so after a dropped connection it retries, and after a reload choosing
// the same file again sends only what the server does not have yet.
(function () {
  'use strict';

  const form = document.getElementById('upload-form');
  const list = document.getElementById('upload-list');
  const tus = window.tus;
  if (!form || !list || !tus || !tus.isSupported || typeof fetch !== 'function') return;

  const MiB = 1024 * 1024;
  const MAX_PARALLEL = 3; // the server's default is 8 upload slots, shared by all clients
  const SPEED_WINDOW_MS = 5000; // speed is measured over the last few seconds

  const input = form.querySelector('input[type="file"][name="file"]');
  const submit = document.getElementById('upload-submit');
  const hint = document.getElementById('drop-hint');
  const panel = form.closest('.upload-panel') || form;
  const auth = window.streamgridAuth;

  // Chunk size: 8 MiB by default (one PATCH, and one fsync on the server, per
  // chunk; a dropped connection loses at most a chunk). A page or a test may ask
  // for another through data-chunk-size on the panel or
  // window.streamgridUploadOptions.chunkSize; it is kept within 64 KiB..64 MiB.
  function chunkSize() {
    const extra = window.streamgridUploadOptions || {};
    const asked = Number(extra.chunkSize || panel.getAttribute('data-chunk-size')) || 8 * MiB;
    return Math.min(64 * MiB, Math.max(64 * 1024, Math.floor(asked)));
  }

  // The form now takes several files and starts them as soon as they are
  // chosen, so the submit button is not needed (the no-JS form keeps it).
  input.multiple = true;
  input.required = false;
  submit.hidden = true;
  hint.hidden = false;
  form.classList.add('drop-zone');

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function formatBytes(n) {
    if (!Number.isFinite(n) || n < 0) return '?';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function formatEta(seconds) {
    if (!Number.isFinite(seconds) || seconds <= 0) return '';
    if (seconds < 60) return Math.ceil(seconds) + ' s left';
    const m = Math.floor(seconds / 60);
    if (m < 60) return m + ' min ' + String(Math.ceil(seconds % 60)).padStart(2, '0') + ' s left';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min left';
  }

  // The server's refusal in words: its JSON {"error": message} when there is
  // one, else a sentence for the status, else the library's own message.
  function errorMessage(err) {
    const res = err && err.originalResponse;
    if (!res) {
      return 'The upload stopped: the connection to the server failed. Choose the file again to resume.';
    }
    let body = null;
    try {
      body = JSON.parse(res.getBody() || '');
    } catch (_) {
      // not JSON
    }
    if (body && typeof body.error === 'string' && body.error) return body.error;
    const status = res.getStatus();
    if (status === 413) return 'The file is too large for this server.';
    if (status === 415) return 'This file type is not supported.';
    return 'Upload failed (HTTP ' + status + ').';
  }

  // ---- one row per file ----

  function makeRow(file) {
    const row = el('li', { class: 'upload-item', 'data-state': 'waiting' });
    const name = el('span', { class: 'upload-name' }, file.name);
    const bar = el('progress', { class: 'upload-bar', max: '100', value: '0' });
    const status = el('p', { class: 'upload-status', 'aria-live': 'polite' }, 'Waiting…');
    const cancel = el('button', { class: 'button upload-cancel', type: 'button' }, 'Cancel');
    const watch = el('a', { class: 'button primary upload-watch', hidden: '' }, 'Watch');
    cancel.setAttribute('aria-label', 'Cancel the upload of ' + file.name);
    const actions = el('div', { class: 'upload-actions' });
    actions.append(cancel, watch);
    row.append(name, actions, bar, status);
    list.prepend(row);
    return { row, bar, status, cancel, watch };
  }

  function setState(ui, state, text) {
    ui.row.setAttribute('data-state', state);
    ui.status.textContent = text;
    const done = state === 'ready' || state === 'failed' || state === 'error' || state === 'cancelled';
    ui.cancel.hidden = done || state === 'processing';
    ui.status.setAttribute('role', state === 'error' || state === 'failed' ? 'alert' : 'status');
  }

  // ---- sending ----

  let running = 0;
  const queue = [];

  function enqueue(files) {
    for (const file of files) {
      const job = { file, ui: makeRow(file), cancel: null, cancelled: false };
      job.ui.cancel.addEventListener('click', () => {
        if (job.cancel) {
          job.cancel();
        } else {
          job.cancelled = true; // still queued
          setState(job.ui, 'cancelled', 'Cancelled.');
        }
      });
      queue.push(job);
    }
    pump();
  }

  function pump() {
    while (running < MAX_PARALLEL && queue.length > 0) {
      const job = queue.shift();
      if (job.cancelled) continue;
      running += 1;
      send(job).finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  // Warn before leaving only while bytes are in flight (resuming is possible,
  // but the user has to choose the files again).
  let inFlight = 0;
  function warnBeforeLeaving(e) {
    e.preventDefault();
    e.returnValue = '';
  }
  function busy(delta) {
    inFlight += delta;
    if (inFlight === 1 && delta > 0) window.addEventListener('beforeunload', warnBeforeLeaving);
    if (inFlight === 0) window.removeEventListener('beforeunload', warnBeforeLeaving);
  }

  // Uploads one file; resolves once it is sent, refused or cancelled (the
  // processing that follows is watched separately).
  function send(job) {
    const { file, ui } = job;
    return new Promise((resolve) => {
      let mediaId = '';
      let samples = []; // [time ms, bytes] for the speed
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        busy(-1);
        resolve();
      };

      const upload = new tus.Upload(file, {
        endpoint: '/api/uploads',
        chunkSize: chunkSize(),
        retryDelays: [0, 1000, 3000, 5000, 10000],
        metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        // The token is read for every request, so one given in the dialog (for
        // this row or another) goes with the next request.
        onBeforeRequest(req) {
          const authorization = auth ? auth.header() : '';
          if (authorization) req.setHeader('Authorization', authorization);
        },
        // The final PATCH names the video the upload became.
        onAfterResponse(req, res) {
          const id = res.getHeader('Stream-Media-Id');
          if (id) mediaId = id;
        },
        onProgress(sent, total) {
          const now = performance.now();
          samples.push([now, sent]);
          while (samples.length > 2 && now - samples[0][0] > SPEED_WINDOW_MS) samples.shift();
          const percent = total > 0 ? Math.floor((sent / total) * 100) : 0;
          ui.bar.value = percent;
          const parts = [formatBytes(sent) + ' of ' + formatBytes(total) + ' (' + percent + '%)'];
          const [t0, b0] = samples[0];
          const rate = now - t0 > 500 ? ((sent - b0) * 1000) / (now - t0) : 0;
          if (rate > 0 && sent < total) {
            parts.push(formatBytes(rate) + '/s');
            const eta = formatEta((total - sent) / rate);
            if (eta) parts.push(eta);
          }
          if (sent >= total) parts.push('checking the file…');
          setState(ui, 'uploading', parts.join(' · '));
        },
        onSuccess() {
          ui.bar.value = 100;
          done();
          if (!mediaId) {
            setState(ui, 'error', 'The server accepted the upload but did not say which video it is.');
            return;
          }
          watchProcessing(mediaId, file.name, ui);
        },
        onError(err) {
          const res = err && err.originalResponse;
          if (res && res.getStatus() === 401 && auth) {
            // The server wants an API token: ask, then start again with it (a
            // wrong token is refused again and asked for again; Cancel stops).
            setState(ui, 'waiting', 'Waiting for the API token…');
            const message = auth.header()
              ? 'The stored API token was not accepted. Enter the right one to upload.'
              : 'This server needs an API token for uploads and deletes.';
            auth.ask(message).then((given) => {
              if (given) {
                upload.start();
              } else {
                setState(ui, 'error', errorMessage(err));
                done();
              }
            });
            return;
          }
          setState(ui, 'error', errorMessage(err));
          done();
        },
      });

      job.cancel = () => {
        // abort(true) also deletes the partial upload on the server and forgets it here.
        upload.abort(true).catch(() => {});
        setState(ui, 'cancelled', 'Cancelled.');
        done();
      };

      busy(1);
      setState(ui, 'waiting', 'Looking for an earlier, unfinished upload of this file…');
      // A file sent partly before (a reload, a closed tab) continues where the
      // server stopped; the newest unfinished upload of it is the one to take.
      upload.findPreviousUploads().then((previous) => {
        if (settled) return;
        if (previous.length > 0) {
          previous.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
          upload.resumeFromPreviousUpload(previous[0]);
          setState(ui, 'uploading', 'Resuming…');
        } else {
          setState(ui, 'uploading', 'Starting…');
        }
        upload.start();
      }, () => {
        if (!settled) upload.start(); // no storage: start from the beginning
      });
    });
  }

  // ---- after the upload: processing, then ready ----

  function watchProcessing(id, name, ui) {
    setState(ui, 'processing', 'Processing…');
    if (window.StreamGrid && window.StreamGrid.trackVideo) window.StreamGrid.trackVideo(id, name);
    const href = '/videos/' + encodeURIComponent(id);

    window.StreamGrid.followVideo(id, {
      onRecord(info) {
        if (info === null) {
          setState(ui, 'failed', 'The video was deleted.');
          return true;
        }
        if (info.status === 'ready') {
          ui.bar.value = 100;
          ui.watch.href = href;
          ui.watch.hidden = false;
          ui.watch.setAttribute('aria-label', 'Watch ' + name);
          setState(ui, 'ready', 'Ready.');
          return true;
        }
        if (info.status === 'failed') {
          setState(ui, 'failed', 'Processing failed' + (info.error ? ': ' + info.error : '.'));
          return true;
        }
        if (info.status === 'processing') {
          const percent = Math.round(Number(info.progress) || 0);
          ui.bar.value = percent;
          setState(ui, 'processing', 'Processing ' + percent + '%');
        }
        return false;
      },
    });
  }

  // ---- choosing files: picker, form submit, drag and drop ----

  function take(files) {
    const chosen = Array.from(files || []);
    if (chosen.length > 0) enqueue(chosen);
  }

  input.addEventListener('change', () => {
    take(input.files);
    input.value = ''; // so that choosing the same file again (to resume) fires change
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault(); // the uploads started when the files were chosen
    take(input.files);
    input.value = '';
  });

  // The whole panel takes drops; the form shows the hover state. dragenter and
  // dragleave fire for every child, hence the depth count.
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  panel.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    form.classList.add('dragging');
  });
  panel.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  panel.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) form.classList.remove('dragging');
  });
  panel.addEventListener('drop', (e) => {
    depth = 0;
    form.classList.remove('dragging');
    if (!e.dataTransfer || !e.dataTransfer.files || e.dataTransfer.files.length === 0) return;
    e.preventDefault(); // or the browser opens the file
    take(e.dataTransfer.files);
  });
})();
