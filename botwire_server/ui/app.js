// The inspector's shell: hash routes (#/, #/ns/NS, #/ns/NS/key/KEY, #/ns/NS/run/RUN; names
// percent-encoded, so the URL never holds a token), the sign-in form, and the error display.

import { ApiError, session } from './api.js';
import { fill, h, notice } from './dom.js';
import { renderKey } from './key.js';
import { renderNamespace } from './namespace.js';
import { renderNamespaces } from './namespaces.js';
import { renderRun } from './run.js';

const main = document.getElementById('main');
const sessionBox = document.getElementById('session');
let controller = null;
let loginShown = false;

/** The current route: {view, ns?, key?, run?, query: URLSearchParams}. */
export function route() {
  const [path, search] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  const query = new URLSearchParams(search ?? '');
  if (parts[0] === 'ns' && parts.length === 2) return { view: 'namespace', ns: parts[1], query };
  if (parts[0] === 'ns' && parts[2] === 'key' && parts.length === 4) return { view: 'key', ns: parts[1], key: parts[3], query };
  if (parts[0] === 'ns' && parts[2] === 'run' && parts.length === 4) return { view: 'run', ns: parts[1], run: parts[3], query };
  return { view: 'namespaces', query };
}

/** An error as a clear message; 401 also opens the sign-in form (see below). */
export function showError(where, error) {
  if (error?.name === 'AbortError') return;
  let text;
  if (error instanceof ApiError && error.status === 403) {
    text = ['Forbidden (403): this token may not read or change this. ', error.message];
  } else if (error instanceof ApiError && error.status === 401) {
    text = ['Not signed in (401): ', error.message];
  } else if (error instanceof ApiError && error.status === 0) {
    text = [error.message];
  } else if (error instanceof ApiError) {
    text = [`Error ${error.status}${error.code ? ` (${error.code})` : ''}: `, error.message];
  } else {
    text = [`Unexpected error: ${error?.message ?? error}`];
  }
  where.append(notice('error', text));
}

function renderSession() {
  if (!session.token()) {
    fill(sessionBox);
    return;
  }
  fill(
    sessionBox,
    h('span', { class: 'muted' }, 'Token kept for this tab only'),
    h('button', { type: 'button', class: 'secondary small', onclick: () => { session.signOut(); renderSession(); showLogin(null); } }, 'Sign out'),
  );
}

function showLogin(error) {
  loginShown = true;
  controller?.abort();
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'bw_…' });
  const form = h(
    'form',
    { class: 'login', onsubmit: (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      session.signIn(token);
      loginShown = false;
      renderSession();
      render();
    } },
    h('label', { for: 'token' }, 'Token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  fill(
    main,
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', {}, 'This server needs a token (bw_<id>_<secret>). The inspector keeps it in this browser tab only (sessionStorage) and sends it as an Authorization header; it is never put in a URL.'),
    error && session.token() ? notice('error', 'The token was refused (401): ', error.message) : null,
    error && !session.token() && error.message ? notice('info', error.message) : null,
    form,
  );
  if (error && session.token()) session.signOut();
  renderSession();
  input.focus();
}

window.addEventListener('botwire:unauthenticated', (event) => {
  if (!loginShown) showLogin(event.detail);
});

export function render() {
  controller?.abort();
  controller = new AbortController();
  loginShown = false;
  const r = route();
  const ctx = { main, signal: controller.signal, route: r, showError };
  fill(main);
  const views = { namespaces: renderNamespaces, namespace: renderNamespace, key: renderKey, run: renderRun };
  Promise.resolve(views[r.view](ctx)).catch((error) => showError(main, error));
  const heading = main.querySelector('h1');
  if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => {
  render();
  main.focus({ preventScroll: true });
});

renderSession();
render();
