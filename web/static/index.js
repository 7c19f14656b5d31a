// StreamGrid home page: keeps the cards of videos that are still processing up to
// date (StreamGrid.followVideo, follow.js), and swaps in the finished card (with
// its thumbnail) once a video is ready. Without JavaScript the page is simply
// static.
(function () {
  'use strict';

  const grid = document.querySelector('.video-grid');
  if (!grid || typeof fetch !== 'function') return;

  // The thumbnail link repeats the title link; keep it out of the tab order and
  // away from screen readers so each video is announced once.
  function quietThumb(card) {
    const thumb = card.querySelector('a.thumb');
    if (thumb) {
      thumb.setAttribute('tabindex', '-1');
      thumb.setAttribute('aria-hidden', 'true');
    }
  }
  grid.querySelectorAll('.video-card').forEach(quietThumb);

  const processingCards = () =>
    Array.from(grid.querySelectorAll('.video-card[data-status="processing"][data-id]'));

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The card as the server renders it, for when the server's own copy is unavailable.
  function buildCard(info) {
    const href = '/videos/' + encodeURIComponent(info.id);
    const card = el('li', { class: 'video-card', 'data-id': info.id, 'data-status': info.status });
    const thumb = el('a', { class: 'thumb', href });
    if (info.status === 'ready') {
      thumb.append(el('img', {
        src: '/content/' + encodeURIComponent(info.id) + '/thumbnail.jpg',
        alt: '',
        loading: 'lazy',
      }));
    } else {
      thumb.append(el('span', { class: 'thumb-placeholder' }, info.status === 'failed' ? 'Failed' : 'Processing'));
    }
    card.append(thumb, el('a', { class: 'title', href }, info.title || info.id));
    card.append(el('span', { class: 'status status-' + info.status }, info.status));
    const clock = window.StreamGrid.clockTime(info.duration);
    if (clock) card.append(el('span', { class: 'duration' }, clock));
    quietThumb(card);
    return card;
  }

  // Prefer the server's rendering of the card (fetched from this same page), so the
  // markup stays the server's business; fall back to building it here.
  async function freshCard(info) {
    try {
      const res = await fetch(window.location.href, { headers: { Accept: 'text/html' }, cache: 'no-store' });
      if (res.ok) {
        const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
        const card = Array.from(doc.querySelectorAll('.video-card[data-id]'))
          .find((c) => c.getAttribute('data-id') === info.id);
        if (card && card.getAttribute('data-status') === info.status) {
          const adopted = document.importNode(card, true);
          quietThumb(adopted);
          return adopted;
        }
      }
    } catch (_) {
      // fall through to the local copy
    }
    return buildCard(info);
  }

  function setBadge(card, status) {
    const badge = card.querySelector('.status');
    if (badge) {
      badge.className = 'status status-' + status;
      badge.textContent = status;
    }
  }

  // Keeps `card` up to date until its video is ready, failed or gone.
  function follow(card) {
    window.StreamGrid.followVideo(card.getAttribute('data-id'), {
      onRecord(info) {
        if (!card.isConnected) return true;
        if (info === null) {
          card.remove(); // deleted elsewhere
          return true;
        }
        if (info.status === 'processing') {
          const percent = Math.round(Number(info.progress) || 0);
          const placeholder = card.querySelector('.thumb-placeholder');
          if (placeholder) placeholder.textContent = 'Processing ' + percent + '%';
          return false;
        }
        if (info.status === 'ready' || info.status === 'failed') {
          freshCard(info).then((replacement) => {
            if (card.isConnected) card.replaceWith(replacement);
          });
          return true;
        }
        setBadge(card, String(info.status));
        return false;
      },
    });
  }

  processingCards().forEach(follow);

  // Called by upload.js once an upload became a video: its card goes first in
  // the grid (the newest video is first on the server's page too) and is kept
  // up to date like the others until it is ready.
  window.StreamGrid = window.StreamGrid || {};
  window.StreamGrid.trackVideo = function trackVideo(id, title) {
    if (Array.from(grid.querySelectorAll('.video-card[data-id]')).some((c) => c.getAttribute('data-id') === id)) {
      return;
    }
    const empty = grid.querySelector('li.empty');
    if (empty) empty.remove();
    const card = buildCard({ id, title, status: 'processing' });
    grid.prepend(card);
    follow(card);
  };
})();
