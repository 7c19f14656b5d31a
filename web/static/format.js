// Formatting shared by the pages' scripts (loaded before them).
(function () {
  'use strict';

  const ns = (window.StreamGrid = window.StreamGrid || {});

  // A length as players show it: "0:07", "12:34", "1:02:03"; '' while unknown.
  // The server formats the cards it renders the same way (page_routes.cc).
  ns.clockTime = function clockTime(seconds) {
    const total = Math.round(Number(seconds) || 0);
    if (total <= 0) return '';
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + s : m + ':' + s;
  };

  // What a failed API answer says: the server's own message ({"error": ...}),
  // else its status.
  ns.responseError = async function responseError(res) {
    try {
      const body = await res.json();
      if (body && typeof body.error === 'string' && body.error) return body.error;
    } catch (_) {
      // not JSON: fall through
    }
    return 'HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : '');
  };
})();
