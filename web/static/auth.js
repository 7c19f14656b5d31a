// StreamGrid API token for changes (uploads, deletes).
//
// A server started with --api-token-file answers 401 to a change without
// "Authorization: Bearer <token>". The pages then ask for the token once, in a
// small dialog, keep it in localStorage and send it with every later change.
// Reads never need it. Exposes window.streamgridAuth:
//   header()          the Authorization value to send, or '' when none is stored
//   ask(message)      shows the dialog; resolves true once a token was saved,
//                     false when the user cancelled
//   forget()          drops the stored token
(function () {
  'use strict';

  const KEY = 'streamgrid.apiToken';
  let memory = ''; // when localStorage is unavailable (private modes, policies)

  function stored() {
    try {
      return window.localStorage.getItem(KEY) || memory;
    } catch (_) {
      return memory;
    }
  }

  function store(token) {
    memory = token;
    try {
      if (token) window.localStorage.setItem(KEY, token);
      else window.localStorage.removeItem(KEY);
    } catch (_) {
      // memory keeps it for this page
    }
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  let dialog = null;
  let pending = null; // the promise of the dialog on screen, shared by concurrent askers

  function buildDialog() {
    const d = el('dialog', { id: 'token-dialog', class: 'token-dialog', 'aria-labelledby': 'token-heading' });
    const form = el('form', { id: 'token-form', method: 'dialog' });
    form.append(
      el('h2', { id: 'token-heading' }, 'API token needed'),
      el('p', { id: 'token-message', class: 'token-message' }),
      el('label', { for: 'token-input' }, 'Token'),
      el('input', {
        id: 'token-input', name: 'token', type: 'password', autocomplete: 'off',
        spellcheck: 'false', required: '',
      }),
      el('p', { class: 'hint' }, 'It is kept in this browser and sent with uploads and deletes.'),
    );
    const buttons = el('div', { class: 'token-buttons' });
    const cancel = el('button', { id: 'token-cancel', class: 'button', type: 'button' }, 'Cancel');
    const save = el('button', { id: 'token-save', class: 'button primary', type: 'submit', value: 'save' }, 'Save');
    buttons.append(cancel, save);
    form.append(buttons);
    d.append(form);
    cancel.addEventListener('click', () => d.close('cancel'));
    document.body.append(d);
    return d;
  }

  function ask(message) {
    if (pending) return pending;
    if (typeof HTMLDialogElement === 'undefined') {
      // Very old browsers: the plain prompt still does the job.
      const token = (window.prompt(message + '\n\nAPI token:') || '').trim();
      if (token) store(token);
      return Promise.resolve(!!token);
    }
    if (!dialog) dialog = buildDialog();
    const input = dialog.querySelector('#token-input');
    dialog.querySelector('#token-message').textContent = message;
    input.value = '';
    dialog.returnValue = '';
    pending = new Promise((resolve) => {
      dialog.addEventListener('close', () => {
        pending = null;
        const token = input.value.trim();
        input.value = '';
        if (dialog.returnValue === 'save' && token) {
          store(token);
          resolve(true);
        } else {
          resolve(false);
        }
      }, { once: true });
    });
    dialog.showModal();
    input.focus();
    return pending;
  }

  window.streamgridAuth = {
    header: () => {
      const token = stored();
      return token ? 'Bearer ' + token : '';
    },
    ask,
    forget: () => store(''),
  };
})();
