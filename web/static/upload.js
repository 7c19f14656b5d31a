// StreamGrid upload form enhancement.
//
// Without JavaScript the form posts to /upload and the server answers 303 to the
// video's page. With it, the upload goes through XMLHttpRequest (fetch cannot
// report upload progress) asking for JSON: 202 {"id","status"} on success, or
// 4xx/5xx {"error": "message"}. A progress bar shows bytes sent; when the upload
// is done the browser goes to /videos/<id>, which shows processing progress.
(function () {
  'use strict';

  const form = document.getElementById('upload-form');
  if (!form || typeof XMLHttpRequest === 'undefined' || typeof FormData === 'undefined') return;

  const input = form.querySelector('input[type="file"][name="file"]');
  const submit = document.getElementById('upload-submit');
  const cancel = document.getElementById('upload-cancel');
  const progressBox = document.getElementById('upload-progress');
  const bar = document.getElementById('upload-bar');
  const progressText = document.getElementById('upload-progress-text');
  const errorBox = document.getElementById('upload-error');

  let xhr = null;

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

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function setBusy(busy) {
    submit.disabled = busy;
    input.disabled = busy;
    cancel.hidden = !busy;
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function warnBeforeLeaving(e) {
    e.preventDefault();
    e.returnValue = '';
  }

  function finish() {
    xhr = null;
    window.removeEventListener('beforeunload', warnBeforeLeaving);
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  function failureMessage(request) {
    const body = parseJson(request.responseText);
    if (body && typeof body.error === 'string' && body.error) return body.error;
    if (request.status === 413) return 'The file is too large for this server.';
    if (request.status === 415) return 'This file type is not supported.';
    return 'Upload failed (HTTP ' + request.status + (request.statusText ? ' ' + request.statusText : '') + ').';
  }

  function goToVideo(id) {
    progressText.textContent = 'Upload complete. Opening the video…';
    window.location.assign('/videos/' + encodeURIComponent(id));
  }

  form.addEventListener('submit', (event) => {
    if (xhr) {
      event.preventDefault();
      return;
    }
    const file = input.files && input.files[0];
    if (!file) return; // let the browser's `required` check explain
    event.preventDefault();
    errorBox.hidden = true;

    const data = new FormData(form);
    const total = file.size;
    const auth = window.streamgridAuth;

    // Sends the form; called again once the user gave the API token the server asked for.
    function send() {
      const request = new XMLHttpRequest();
      xhr = request;
      const started = performance.now();

      request.open('POST', form.action);
      request.setRequestHeader('Accept', 'application/json');
      const authorization = auth ? auth.header() : '';
      if (authorization) request.setRequestHeader('Authorization', authorization);
      request.responseType = 'text';

      request.upload.addEventListener('progress', (e) => {
        const sent = e.loaded;
        const size = e.lengthComputable ? e.total : total;
        const percent = size > 0 ? Math.min(100, Math.floor((sent / size) * 100)) : 0;
        bar.value = percent;
        const elapsed = (performance.now() - started) / 1000;
        const rate = elapsed > 0.5 ? sent / elapsed : 0;
        const parts = [formatBytes(sent) + ' of ' + formatBytes(size) + ' (' + percent + '%)'];
        if (rate > 0 && sent < size) {
          parts.push(formatBytes(rate) + '/s');
          const eta = formatEta((size - sent) / rate);
          if (eta) parts.push(eta);
        }
        if (sent >= size) parts.push('processing upload…');
        progressText.textContent = parts.join(' · ');
      });

      request.addEventListener('load', () => {
        finish();
        const body = parseJson(request.responseText);
        if (request.status >= 200 && request.status < 300 && body && body.id) {
          bar.value = 100;
          goToVideo(body.id);
          return;
        }
        // A server that ignored Accept and redirected: XHR followed the 303.
        if (request.status === 200 && /\/videos\/[^/?#]+/.test(request.responseURL || '')) {
          window.location.assign(request.responseURL);
          return;
        }
        if (request.status === 401 && auth) {
          // The server wants an API token: ask once, then send again with it.
          bar.value = 0;
          progressText.textContent = 'Waiting for the API token…';
          const message = authorization
            ? 'The stored API token was not accepted. Enter the right one to upload.'
            : 'This server needs an API token for uploads and deletes.';
          auth.ask(message).then((given) => {
            if (given) {
              send();
              window.addEventListener('beforeunload', warnBeforeLeaving);
              return;
            }
            setBusy(false);
            progressBox.hidden = true;
            showError(failureMessage(request));
          });
          return;
        }
        setBusy(false);
        progressBox.hidden = true;
        showError(request.status >= 200 && request.status < 300
          ? 'The server accepted the upload but did not say where the video is.'
          : failureMessage(request));
      });

      request.addEventListener('error', () => {
        finish();
        setBusy(false);
        progressBox.hidden = true;
        showError('The upload did not finish: the connection to the server failed.');
      });

      request.addEventListener('abort', () => {
        finish();
        setBusy(false);
        progressBox.hidden = true;
        progressText.textContent = '';
      });

      request.send(data);
    }

    bar.value = 0;
    progressText.textContent = 'Starting upload of ' + file.name + ' (' + formatBytes(total) + ')…';
    progressBox.hidden = false;
    setBusy(true);
    window.addEventListener('beforeunload', warnBeforeLeaving);
    send();
  });

  cancel.addEventListener('click', () => {
    if (xhr) xhr.abort();
    input.focus();
  });

  // Drag and drop a file anywhere on the upload panel.
  const zone = form.closest('.upload-panel') || form;
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  zone.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || xhr) return;
    e.preventDefault();
    depth += 1;
    form.classList.add('dragging');
  });
  zone.addEventListener('dragover', (e) => {
    if (!hasFiles(e) || xhr) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  zone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) form.classList.remove('dragging');
  });
  zone.addEventListener('drop', (e) => {
    depth = 0;
    form.classList.remove('dragging');
    if (!hasFiles(e) || xhr) return;
    e.preventDefault();
    const files = e.dataTransfer.files;
    if (!files || files.length === 0) return;
    try {
      const dt = new DataTransfer();
      dt.items.add(files[0]);
      input.files = dt.files;
    } catch (_) {
      input.files = files;
    }
    errorBox.hidden = true;
    submit.focus();
  });

  input.addEventListener('change', () => {
    errorBox.hidden = true;
  });
})();
