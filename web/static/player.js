// StreamGrid player page.
//
// Waits for the video to be playable (StreamGrid.followVideo, follow.js: long
// polls of GET /api/videos/<id>, answered when the record changes), then
// plays it with the best engine the browser has:
//   dash.js  (/content/<id>/manifest.mpd) where Media Source Extensions exist,
//   native   (/content/<id>/master.m3u8) where <video> plays HLS itself (iOS),
//   hls.js   (master.m3u8) as the last resort.
// `?engine=dash|hls|native` forces one. Tests read window.streamgridPlayer.
// A video still processing but already `playable` has growing HLS playlists
// (EVENT: only stored segments, more as the encode goes on): it plays through
// hls.js (or native HLS) from the start, and carries on into the final (VOD)
// playlists, same URLs, when processing ends.
(function () {
  'use strict';

  const ENGINES = ['dash', 'hls', 'native'];

  const page = document.querySelector('[data-video-id]');
  const video = document.getElementById('video');
  const frame = document.getElementById('player-frame');
  const statusText = document.getElementById('status-text');
  const statusDetail = document.getElementById('status-detail');
  const statusProgress = document.getElementById('status-progress');
  const retryButton = document.getElementById('status-retry');
  const qualitySelect = document.getElementById('quality');
  const qualityControl = qualitySelect && qualitySelect.closest('.quality-control');
  const currentQuality = document.getElementById('current-quality');
  const details = document.getElementById('video-details');
  const titleEl = document.getElementById('title');
  const deleteButton = document.getElementById('delete');
  const actionError = document.getElementById('action-error');

  // What tests (and curious humans in the console) can inspect.
  const state = {
    engine: null, // 'dash' | 'hls' | 'native' once playback is set up
    errors: [], // every player error message, in order
    status: null, // the last status the API reported
    info: null, // the last JSON the API returned
    dash: null, // the dash.js MediaPlayer, when engine === 'dash'
    storyboard: null, // {url, cues} once the seek bar's previews are loaded
    hls: null, // the Hls instance, when engine === 'hls'
    startedWhileProcessing: false, // playback began before the video was ready
  };
  window.streamgridPlayer = state;

  if (!page || !video || !frame) return;
  const videoId = page.getAttribute('data-video-id') || '';
  const apiUrl = '/api/videos/' + encodeURIComponent(videoId);
  const contentUrl = (name) => '/content/' + encodeURIComponent(videoId) + '/' + name;

  let follow = null; // StreamGrid.followVideo's, while the page waits for the video

  // ---- status overlay ------------------------------------------------------

  // name: loading | processing | failed | error | ready (the overlay hides on ready).
  // detail: an optional second, smaller line (technical details of an error).
  function showStatus(name, text, percent, detail) {
    frame.setAttribute('data-state', name);
    frame.setAttribute('aria-busy', name === 'loading' || name === 'processing' ? 'true' : 'false');
    statusText.textContent = text;
    statusDetail.textContent = detail || '';
    statusDetail.hidden = !detail;
    if (typeof percent === 'number' && Number.isFinite(percent)) {
      statusProgress.hidden = false;
      statusProgress.value = Math.max(0, Math.min(100, percent));
    } else {
      statusProgress.hidden = true;
    }
    retryButton.hidden = name !== 'error';
  }

  function reportError(message, options) {
    const text = String(message || 'Unknown playback error');
    state.errors.push(text);
    console.error('[streamgrid] ' + text);
    if (!options || !options.recovering) {
      showStatus('error', 'This video cannot be played right now.', undefined, text);
    }
  }

  retryButton.addEventListener('click', () => window.location.reload());

  // ---- helpers -----------------------------------------------------------------

  function formatDate(value) {
    if (value === undefined || value === null || value === '') return '';
    let date;
    if (typeof value === 'number') date = new Date(value < 1e11 ? value * 1000 : value);
    else date = new Date(value);
    if (Number.isNaN(date.getTime())) return '';
    try {
      return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' }).format(date);
    } catch (_) {
      return date.toDateString();
    }
  }

  function renderDetails(info) {
    const parts = [];
    const duration = window.StreamGrid.clockTime(info.duration);
    if (duration) parts.push(duration);
    const created = formatDate(info.created_at);
    if (created) parts.push('Uploaded ' + created);
    details.textContent = parts.join(' · ');
    if (info.title && titleEl.textContent !== info.title) titleEl.textContent = info.title;
  }

  // ---- following the API ------------------------------------------------------

  function startFollowing() {
    follow = window.StreamGrid.followVideo(videoId, {
      onRecord(info) {
        if (info === null) {
          showStatus('failed', 'This video does not exist. It may have been deleted.');
          deleteButton.hidden = true;
          return true;
        }
        handleInfo(info);
        return info.status !== 'processing';
      },
      onError(message) {
        const keep = frame.getAttribute('data-state') === 'processing' ? statusProgress.value : undefined;
        showStatus(keep === undefined ? 'loading' : 'processing', 'Cannot reach the server. Retrying…', keep,
          message);
      },
    });
  }

  function stopFollowing() {
    if (follow) follow.stop();
    follow = null;
  }

  function handleInfo(info) {
    state.info = info;
    state.status = info.status;
    renderDetails(info);
    switch (info.status) {
      case 'processing': {
        const percent = Math.round(Number(info.progress) || 0);
        if (info.playable && !state.startedWhileProcessing) {
          // Once: should it fail, the next try is with the final files.
          state.startedWhileProcessing = true;
          startPlayback(true);
        } else if (!state.startedWhileProcessing) {
          showStatus('processing', 'Processing… ' + percent + '%', percent);
        }
        break;
      }
      case 'failed':
        showStatus('failed', 'Processing this video failed.', undefined, info.error || 'No reason was given.');
        break;
      case 'ready':
        // Already playing the growing playlists: the engine reads the final
        // ones by itself; only the poster is new. If that player gave up, the
        // final files get a fresh one.
        if (state.engine && (state.engine !== 'hls' || state.hls)) {
          video.poster = info.thumbnail_url || contentUrl('thumbnail.jpg');
        } else {
          startPlayback(false);
        }
        break;
      default:
        showStatus('failed', 'Unexpected video status: ' + String(info.status));
    }
  }

  // ---- engines -------------------------------------------------------------------

  function hasMediaSource() {
    // Classic MSE only: iOS Safari offers just ManagedMediaSource, and plays HLS natively.
    const MS = window.MediaSource || window.WebKitMediaSource;
    return !!(MS && typeof MS.isTypeSupported === 'function' &&
      MS.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'));
  }
  const dashAvailable = () => typeof window.dashjs !== 'undefined' && !!window.dashjs.MediaPlayer;
  const hlsjsAvailable = () => typeof window.Hls !== 'undefined' && window.Hls.isSupported();
  const nativeHls = () => video.canPlayType('application/vnd.apple.mpegurl') !== '';

  // live: only HLS can play a video still being encoded (there is no DASH
  // manifest until the end).
  function chooseEngine(live) {
    const forced = new URLSearchParams(window.location.search).get('engine');
    if (forced && ENGINES.includes(forced) && !(live && forced === 'dash')) return forced;
    if (live) {
      if (hlsjsAvailable()) return 'hls';
      if (nativeHls()) return 'native';
      return null;
    }
    if (dashAvailable() && hasMediaSource() &&
        (typeof window.dashjs.supportsMediaSource !== 'function' || window.dashjs.supportsMediaSource())) {
      return 'dash';
    }
    if (nativeHls()) return 'native';
    if (hlsjsAvailable()) return 'hls';
    return null;
  }

  function startPlayback(live) {
    const engine = chooseEngine(live);
    if (!engine) {
      state.engine = null;
      reportError('This browser cannot play adaptive video (no Media Source Extensions or HLS support).');
      return;
    }
    state.engine = engine;
    page.setAttribute('data-engine', engine);
    if (!live) video.poster = state.info.thumbnail_url || contentUrl('thumbnail.jpg');
    showStatus('ready', 'Ready');
    deleteButton.hidden = false;
    try {
      if (engine === 'dash') startDash();
      else if (engine === 'hls') startHlsJs(live);
      else startNative();
    } catch (err) {
      reportError('Could not start the ' + engine + ' player: ' + (err && err.message ? err.message : err));
    }
  }

  function describeDashError(e) {
    const err = e && e.error;
    if (!err) return 'dash.js error';
    if (typeof err === 'string') {
      const detail = e.event && (e.event.message || e.event.url || e.event.id);
      return 'dash.js ' + err + (detail ? ': ' + detail : '');
    }
    const code = err.code !== undefined && err.code !== null ? ' (code ' + err.code + ')' : '';
    return 'dash.js: ' + (err.message || 'error') + code;
  }

  function startDash() {
    if (!dashAvailable()) throw new Error('dash.js did not load');
    const dashjs = window.dashjs;
    const player = dashjs.MediaPlayer().create();
    state.dash = player;
    const events = dashjs.MediaPlayer.events;
    player.updateSettings({
      debug: { logLevel: 2 }, // errors only
      streaming: { abr: { autoSwitchBitrate: { video: true, audio: true } } },
    });
    player.on(events.ERROR, (e) => reportError(describeDashError(e)));
    player.on(events.STREAM_INITIALIZED, () => {
      const reps = player.getRepresentationsByType('video') || [];
      setQualities(reps.map((r) => ({
        value: String(r.id),
        height: r.height,
        width: r.width,
        bitrate: r.bandwidth,
      })));
    });
    player.initialize(video, state.info.dash_url || contentUrl('manifest.mpd'), false);
  }

  function startHlsJs(live) {
    if (!hlsjsAvailable()) throw new Error('hls.js did not load or this browser lacks Media Source Extensions');
    const Hls = window.Hls;
    // The worker comes from our own origin: the page's CSP allows no blob: workers.
    const config = { capLevelToPlayerSize: false, workerPath: '/static/vendor/hls.worker.js' };
    // A growing (EVENT) playlist looks live to hls.js, which would start near
    // its end: this is a video on demand that is not all there yet, so start
    // at the beginning.
    if (live) config.startPosition = 0;
    const hls = new Hls(config);
    state.hls = hls;
    let mediaRecoveries = 0;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      const detail = data.details + (data.error && data.error.message ? ': ' + data.error.message : '');
      if (!data.fatal) {
        console.warn('[streamgrid] hls.js (recoverable) ' + detail);
        return;
      }
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 1) {
        mediaRecoveries += 1;
        reportError('hls.js media error, recovering: ' + detail, { recovering: true });
        hls.recoverMediaError();
        return;
      }
      reportError('hls.js ' + data.type + ': ' + detail);
      hls.destroy();
      state.hls = null;
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      setQualities(hls.levels.map((level, index) => ({
        value: String(index),
        height: level.height,
        width: level.width,
        bitrate: level.bitrate,
      })));
    });
    hls.loadSource(state.info.hls_url || contentUrl('master.m3u8'));
    hls.attachMedia(video);
  }

  function startNative() {
    if (!nativeHls()) throw new Error('this browser does not play HLS natively');
    // The browser picks the rendition itself; there is nothing to choose from, so
    // the quality menu stays hidden.
    video.src = state.info.hls_url || contentUrl('master.m3u8');
  }

  video.addEventListener('error', () => {
    const err = video.error;
    if (!err || err.code === 1 /* MEDIA_ERR_ABORTED: we stopped it */) return;
    const names = { 2: 'network error', 3: 'decode error', 4: 'format not supported' };
    reportError('media element ' + (names[err.code] || 'error') + (err.message ? ': ' + err.message : ''));
  });

  // ---- quality menu ----------------------------------------------------------------

  function bitrateLabel(bps) {
    if (!bps) return '';
    return bps >= 1e6 ? (bps / 1e6).toFixed(1) + ' Mb/s' : Math.round(bps / 1e3) + ' kb/s';
  }

  // qualities: [{value, height, width, bitrate}] in the engine's own terms.
  function setQualities(qualities) {
    const list = qualities.filter((q) => q.height > 0)
      .sort((a, b) => b.height - a.height || b.bitrate - a.bitrate);
    const perHeight = new Map();
    for (const q of list) perHeight.set(q.height, (perHeight.get(q.height) || 0) + 1);
    const options = [new Option('Auto', 'auto', true, true)];
    for (const q of list) {
      let label = q.height + 'p';
      if (perHeight.get(q.height) > 1 && q.bitrate) label += ' (' + bitrateLabel(q.bitrate) + ')';
      const option = new Option(label, q.value);
      option.setAttribute('data-height', String(q.height));
      options.push(option);
    }
    qualitySelect.replaceChildren(...options);
    qualitySelect.disabled = list.length === 0;
    if (qualityControl) qualityControl.hidden = false;
    updateCurrentQuality();
  }

  function applyQuality(value) {
    const auto = value === 'auto';
    if (state.engine === 'dash' && state.dash) {
      state.dash.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: auto } } } });
      // forceReplace: drop what is buffered so the choice shows at once.
      if (!auto) state.dash.setRepresentationForTypeById('video', value, true);
    } else if (state.engine === 'hls' && state.hls) {
      state.hls.currentLevel = auto ? -1 : Number(value);
    }
    updateCurrentQuality();
  }

  function updateCurrentQuality() {
    const height = video.videoHeight;
    currentQuality.textContent = height ? 'Playing ' + height + 'p' : '';
    page.setAttribute('data-playing-height', String(height || 0));
  }

  qualitySelect.addEventListener('change', () => applyQuality(qualitySelect.value));
  video.addEventListener('resize', updateCurrentQuality);
  video.addEventListener('loadedmetadata', updateCurrentQuality);

  // ---- delete ------------------------------------------------------------------------

  deleteButton.addEventListener('click', async () => {
    const title = titleEl.textContent.trim() || 'this video';
    if (!window.confirm('Delete “' + title + '”? This cannot be undone.')) return;
    deleteButton.disabled = true;
    actionError.hidden = true;
    const auth = window.streamgridAuth;
    const remove = () => {
      const headers = { Accept: 'application/json' };
      const authorization = auth ? auth.header() : '';
      if (authorization) headers.Authorization = authorization;
      return fetch(apiUrl, { method: 'DELETE', headers }).then((res) => ({ res, authorization }));
    };
    try {
      let { res, authorization } = await remove();
      if (res.status === 401 && auth) {
        // The server wants an API token: ask once, then try again with it.
        const given = await auth.ask(authorization
          ? 'The stored API token was not accepted. Enter the right one to delete.'
          : 'This server needs an API token for uploads and deletes.');
        if (given) ({ res } = await remove());
      }
      if (!res.ok && res.status !== 404) throw new Error(await window.StreamGrid.responseError(res));
      stopFollowing();
      window.location.assign('/');
    } catch (err) {
      actionError.textContent = 'Could not delete the video: ' + (err && err.message ? err.message : err);
      actionError.hidden = false;
      deleteButton.disabled = false;
    }
  });

  // ---- seek bar and storyboard previews -------------------------------------------------
  // Our own bar under the video (the native controls stay): where it is
  // hovered, or dragged on a touch screen, a preview shows that moment's tile
  // of the storyboard (a sprite sheet; a WebVTT track says which tile covers
  // which time, "storyboard.jpg#xywh=x,y,w,h") and the time. The track is
  // fetched once, on the first hover; a video without one (transcoded before
  // storyboards) shows the time only.

  const seekBar = document.getElementById('seek');
  const seekPlayed = document.getElementById('seek-played');
  const seekBuffered = document.getElementById('seek-buffered');
  const preview = document.getElementById('seek-preview');
  const previewImage = document.getElementById('seek-preview-image');
  const previewTime = document.getElementById('seek-preview-time');
  const MAX_STORYBOARD_BYTES = 1 << 20;

  let storyboardCues = null; // [{start, end, url, x, y, w, h}] once loaded
  let storyboardLoad = null;
  let pointer = null; // {x, time} while the pointer is over the bar (or dragging)
  let dragging = false;

  // "00:01:02.500" or "01:02.500" -> seconds, NaN if malformed.
  function vttSeconds(text) {
    const m = /^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$/.exec(text.trim());
    if (!m) return NaN;
    return Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
  }

  // The cues of a storyboard track; images only from our own origin.
  function parseStoryboard(text, base) {
    if (!/^\uFEFF?WEBVTT/.test(text)) return [];
    const cues = [];
    for (const block of text.replace(/\r\n?/g, '\n').split(/\n{2,}/)) {
      const lines = block.split('\n');
      const at = lines.findIndex((line) => line.includes('-->'));
      if (at < 0 || at + 1 >= lines.length) continue;
      const [from, to] = lines[at].split('-->');
      const start = vttSeconds(from);
      const end = vttSeconds((to || '').trim().split(/\s+/)[0] || '');
      const m = /^(.+)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(lines[at + 1].trim());
      if (!m || !(end > start)) continue;
      let url;
      try {
        url = new URL(m[1], base);
      } catch (_) {
        continue;
      }
      if (url.origin !== window.location.origin) continue;
      cues.push({ start, end, url: url.href, x: +m[2], y: +m[3], w: +m[4], h: +m[5] });
    }
    return cues.sort((a, b) => a.start - b.start);
  }

  function loadStoryboard() {
    if (storyboardLoad) return storyboardLoad;
    const src = state.info && state.info.storyboard_url;
    if (!src) return Promise.resolve([]);
    const base = new URL(src, window.location.href);
    storyboardLoad = fetch(base.href)
      .then((res) => (res.ok ? res.text() : ''))
      .then((text) => {
        storyboardCues = text.length <= MAX_STORYBOARD_BYTES ? parseStoryboard(text, base.href) : [];
        state.storyboard = { url: base.href, cues: storyboardCues.length };
        // Fetched ahead, so the first tile shows at once.
        if (storyboardCues.length > 0) new Image().src = storyboardCues[0].url;
        if (pointer) showPreview(pointer.x, pointer.time);
        return storyboardCues;
      })
      .catch(() => {
        storyboardCues = [];
        return storyboardCues;
      });
    return storyboardLoad;
  }

  function seekDuration() {
    if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
    return 0;
  }

  function cueAt(time) {
    if (!storyboardCues) return null;
    for (const cue of storyboardCues) {
      if (time >= cue.start && time < cue.end) return cue;
    }
    const last = storyboardCues[storyboardCues.length - 1];
    return last && time >= last.end - 1e-3 ? last : null; // the very end
  }

  function showPreview(x, time) {
    const cue = cueAt(time);
    if (cue) {
      previewImage.style.width = cue.w + 'px';
      previewImage.style.height = cue.h + 'px';
      previewImage.style.backgroundImage = 'url("' + cue.url + '")';
      previewImage.style.backgroundPosition = -cue.x + 'px ' + -cue.y + 'px';
    }
    previewImage.hidden = !cue;
    previewTime.textContent = window.StreamGrid.clockTime(time) || '0:00';
    preview.setAttribute('data-time', time.toFixed(3));
    preview.hidden = false;
    // Centred on the pointer, but never past the bar's ends (no sideways
    // scrolling on a phone).
    const half = preview.offsetWidth / 2;
    const width = seekBar.clientWidth;
    preview.style.left = Math.max(half, Math.min(width - half, x)) + 'px';
  }

  function hidePreview() {
    pointer = null;
    preview.hidden = true;
  }

  function pointerAt(e) {
    const rect = seekBar.getBoundingClientRect();
    const x = Math.max(0, Math.min(rect.width, e.clientX - rect.left));
    const fraction = rect.width > 0 ? x / rect.width : 0;
    return { x, time: fraction * seekDuration() };
  }

  function renderProgress(time) {
    const duration = seekDuration();
    const fraction = duration > 0 ? Math.max(0, Math.min(1, time / duration)) : 0;
    seekPlayed.style.width = fraction * 100 + '%';
    seekBar.setAttribute('aria-valuemax', String(Math.round(duration)));
    seekBar.setAttribute('aria-valuenow', String(Math.round(time)));
    seekBar.setAttribute('aria-valuetext', window.StreamGrid.clockTime(time) || '0:00');
  }

  function updateSeekBar() {
    const duration = seekDuration();
    seekBar.hidden = !(duration > 0) || !state.engine;
    if (seekBar.hidden) return;
    if (!dragging) renderProgress(video.currentTime);
    let buffered = 0;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime + 0.5) buffered = Math.max(buffered, video.buffered.end(i));
    }
    seekBuffered.style.width = Math.min(1, buffered / duration) * 100 + '%';
  }

  // A page without the bar (an older template) plays as before.
  if (seekBar && seekPlayed && seekBuffered && preview && previewImage && previewTime) {
    for (const name of ['timeupdate', 'durationchange', 'loadedmetadata', 'progress', 'seeking', 'emptied']) {
      video.addEventListener(name, updateSeekBar);
    }

    seekBar.addEventListener('pointerenter', () => {
      loadStoryboard();
    });
    seekBar.addEventListener('pointermove', (e) => {
      pointer = pointerAt(e);
      if (dragging) renderProgress(pointer.time);
      showPreview(pointer.x, pointer.time);
    });
    seekBar.addEventListener('pointerleave', () => {
      if (!dragging) hidePreview();
    });
    seekBar.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 || !(seekDuration() > 0)) return;
      e.preventDefault();
      loadStoryboard();
      dragging = true;
      seekBar.setAttribute('data-dragging', '');
      seekBar.setPointerCapture(e.pointerId);
      pointer = pointerAt(e);
      renderProgress(pointer.time);
      showPreview(pointer.x, pointer.time);
    });
    const endDrag = (e, commit) => {
      if (!dragging) return;
      dragging = false;
      seekBar.removeAttribute('data-dragging');
      const at = pointerAt(e);
      if (commit && video.readyState > 0) video.currentTime = at.time;
      // A mouse still over the bar keeps its preview; a finger lifted does not.
      if (e.pointerType !== 'mouse') hidePreview();
      updateSeekBar();
    };
    seekBar.addEventListener('pointerup', (e) => endDrag(e, true));
    seekBar.addEventListener('pointercancel', (e) => endDrag(e, false));
  }

  // ---- keyboard shortcuts ----------------------------------------------------------------
  // Space or k: play / pause; left / right (or j / l): back / ahead 5 s (10 s);
  // up / down: volume; m: mute; f: full screen; 0-9: jump to 0 %-90 %.
  // Keys typed into a control (or with a modifier) are left alone.

  const SEEK_STEP_S = 5;
  const LONG_SEEK_STEP_S = 10;
  const VOLUME_STEP = 0.1;

  function typingInto(target) {
    if (!(target instanceof Element) || target === video) return false;
    return target.isContentEditable || !!target.closest('input, select, textarea, button, summary');
  }

  function seekBy(seconds) {
    if (!(video.readyState > 0)) return;
    const end = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.max(0, Math.min(end, video.currentTime + seconds));
  }

  function toggleFullscreen() {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (frame.requestFullscreen) {
      frame.requestFullscreen().catch(() => {});
    } else if (video.webkitEnterFullscreen) {
      video.webkitEnterFullscreen(); // iOS: only the <video> itself can go full screen
    }
  }

  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typingInto(e.target)) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    switch (key) {
      case ' ':
      case 'k':
        if (video.paused || video.ended) video.play().catch(() => {});
        else video.pause();
        break;
      case 'ArrowLeft':
        seekBy(-SEEK_STEP_S);
        break;
      case 'ArrowRight':
        seekBy(SEEK_STEP_S);
        break;
      case 'j':
        seekBy(-LONG_SEEK_STEP_S);
        break;
      case 'l':
        seekBy(LONG_SEEK_STEP_S);
        break;
      case 'ArrowUp':
        video.volume = Math.min(1, video.volume + VOLUME_STEP);
        video.muted = false;
        break;
      case 'ArrowDown':
        video.volume = Math.max(0, video.volume - VOLUME_STEP);
        break;
      case 'm':
        video.muted = !video.muted;
        break;
      case 'f':
        toggleFullscreen();
        break;
      default:
        if (/^[0-9]$/.test(key) && Number.isFinite(video.duration) && video.readyState > 0) {
          video.currentTime = (video.duration * Number(key)) / 10;
          break;
        }
        return; // not ours: let the browser have it
    }
    // Ours: no page scroll on space or the arrows, no second toggle by the
    // focused <video>'s own controls.
    e.preventDefault();
  });

  // ---- start -----------------------------------------------------------------------------

  // Delete works while processing too (the server cancels the job).
  deleteButton.hidden = false;
  document.addEventListener('visibilitychange', () => {
    // Catch up at once when the tab comes back instead of waiting out a long retry delay.
    if (!document.hidden && follow) follow.retryNow();
  });
  window.addEventListener('pagehide', stopFollowing);
  window.addEventListener('pageshow', (e) => {
    // Back/forward cache: follow again if we were still waiting for the video.
    if (e.persisted && !follow && state.status !== 'ready' && state.status !== 'failed') startFollowing();
  });
  showStatus('loading', 'Loading…');
  startFollowing();
})();
