// The namespaces view: every namespace the token may read, with its head revision, keys,
// bytes and last change; a search box (by prefix, answered by the server) and paging.

import { api } from './api.js';
import { debounce, fill, fmtBytes, h, notice, time } from './dom.js';
import { nsHref } from './links.js';

const PAGE = 100;

export async function renderNamespaces({ main, signal, route, showError }) {
  const search = h('input', { id: 'ns-search', type: 'search', autocomplete: 'off', value: route.query.get('q') ?? '', placeholder: 'team-a/' });
  const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More namespaces');
  const errors = h('div');
  main.append(
    h('h1', { tabindex: '-1' }, 'Namespaces'),
    h('form', { class: 'toolbar', role: 'search', onsubmit: (event) => event.preventDefault() },
      h('label', { for: 'ns-search' }, 'Search (namespace prefix)'), search),
    errors,
    status,
    h('div', { class: 'scroll' },
      h('table', { class: 'grid namespaces' },
        h('caption', { class: 'visually-hidden' }, 'Namespaces'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Namespace'), h('th', { scope: 'col', class: 'num' }, 'Head revision'),
          h('th', { scope: 'col', class: 'num' }, 'Keys'), h('th', { scope: 'col', class: 'num' }, 'Bytes'),
          h('th', { scope: 'col' }, 'Last change'))),
        tbody)),
    more,
  );
  let cursor = null;
  let shown = 0;

  async function load(reset) {
    fill(errors);
    if (reset) {
      fill(tbody);
      cursor = null;
      shown = 0;
    }
    try {
      const page = await api.namespaces({ prefix: search.value, cursor, limit: PAGE }, signal);
      for (const row of page.namespaces ?? []) {
        tbody.append(h('tr', {},
          h('th', { scope: 'row' }, h('a', { href: nsHref(row.namespace) }, row.namespace)),
          h('td', { class: 'num' }, String(row.revision)),
          h('td', { class: 'num' }, String(row.keys)),
          h('td', { class: 'num' }, fmtBytes(row.bytes)),
          h('td', {}, time(row.updated_at))));
        shown += 1;
      }
      cursor = page.next_cursor ?? null;
      more.hidden = cursor === null;
      fill(status, shown ? `${shown} namespace${shown === 1 ? '' : 's'}${cursor ? ' so far' : ''}.` : '');
      if (!shown) errors.append(notice('info', search.value ? 'No namespace starts with that prefix.' : 'No namespaces yet (or none this token may read).'));
    } catch (error) {
      showError(errors, error);
    }
  }

  search.addEventListener('input', debounce(() => {
    history.replaceState(null, '', search.value ? `#/?q=${encodeURIComponent(search.value)}` : '#/');
    load(true);
  }, 200));
  more.addEventListener('click', () => load(false));
  await load(true);
}
