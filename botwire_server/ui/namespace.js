// The namespace view: its keys with value previews (filtered by prefix, paged), a
// revision/time control that shows the namespace as of that point, a rollback to it (dry run
// first), and live updates through watch while it shows the head.

import { api } from './api.js';
import { confirmDryRun } from './confirm.js';
import { debounce, fill, fmtBytes, h, notice, orDash, preview, time } from './dom.js';
import { keyHref, nsHref, runHref } from './links.js';
import { watch } from './watch.js';

const PAGE = 50;
const LOG = 20;

/** "by actor · run r · agent a: reason" of an event, for the fields that are present. */
export function provenance(ns, event) {
  const parts = [];
  if (event.actor) parts.push(h('span', { class: 'who' }, 'by ', event.actor));
  if (event.run) parts.push(h('span', { class: 'who' }, 'run ', h('a', { href: runHref(ns, event.run) }, event.run)));
  if (event.agent) parts.push(h('span', { class: 'who' }, 'agent ', event.agent));
  if (event.reason) parts.push(h('span', { class: 'who reason' }, '“', event.reason, '”'));
  return parts;
}

export async function renderNamespace({ main, signal, route, showError }) {
  const ns = route.ns;
  const atParam = route.query.get('at');
  let at = atParam !== null && /^[0-9]+$/.test(atParam) ? Number(atParam) : null; // null: live
  let prefix = route.query.get('prefix') ?? '';
  let head = 0;
  let oldest = 0;
  let cursor = null;

  const errors = h('div');
  const summary = h('dl', { class: 'summary' });
  const slider = h('input', { id: 'rev-range', type: 'range', min: 0, max: 0, step: 1, value: 0, 'aria-describedby': 'rev-info' });
  const number = h('input', { id: 'rev-number', type: 'number', min: 0, step: 1, inputmode: 'numeric', class: 'narrow' });
  const when = h('input', { id: 'rev-time', type: 'datetime-local', step: 1 });
  const liveButton = h('button', { type: 'button', class: 'secondary' }, 'Back to now (live)');
  const rollbackButton = h('button', { type: 'button', class: 'danger', hidden: true }, 'Roll back namespace to this revision…');
  const revInfo = h('p', { id: 'rev-info', class: 'rev-info', role: 'status', 'aria-live': 'polite' });
  const prefixInput = h('input', { id: 'key-prefix', type: 'search', autocomplete: 'off', value: prefix, placeholder: 'user:' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More keys');
  const keyStatus = h('p', { class: 'muted', role: 'status' });
  const liveState = h('p', { class: 'live-state', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
  const log = h('ol', { class: 'log', 'aria-label': 'Latest changes', reversed: true });
  const runInput = h('input', { id: 'run-id', type: 'text', autocomplete: 'off', required: true });

  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Namespaces'), ' / ', h('span', {}, ns)),
    h('h1', { tabindex: '-1' }, h('span', { class: 'muted' }, 'Namespace '), ns),
    errors,
    summary,
    h('section', { class: 'panel', 'aria-labelledby': 'time-h' },
      h('h2', { id: 'time-h' }, 'Revision and time'),
      h('div', { class: 'timebar' },
        h('label', { for: 'rev-range' }, 'Revision'), slider,
        h('label', { for: 'rev-number', class: 'visually-hidden' }, 'Revision number'), number),
      h('form', { class: 'toolbar', onsubmit: (event) => { event.preventDefault(); goToTime(); } },
        h('label', { for: 'rev-time' }, 'As of time (local)'), when, h('button', { type: 'submit', class: 'secondary' }, 'Show'),
        liveButton),
      revInfo,
      rollbackButton),
    h('section', { class: 'panel', 'aria-labelledby': 'keys-h' },
      h('h2', { id: 'keys-h' }, 'Keys'),
      h('form', { class: 'toolbar', role: 'search', onsubmit: (event) => event.preventDefault() },
        h('label', { for: 'key-prefix' }, 'Filter by key prefix'), prefixInput),
      keyStatus,
      h('div', { class: 'scroll' },
        h('table', { class: 'grid keys' },
          h('caption', { class: 'visually-hidden' }, 'Keys'),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'),
            h('th', { scope: 'col', class: 'num' }, 'Version'), h('th', { scope: 'col' }, 'Updated'),
            h('th', { scope: 'col', class: 'num' }, 'Bytes'))),
          tbody)),
      more),
    h('section', { class: 'panel', 'aria-labelledby': 'live-h' },
      h('h2', { id: 'live-h' }, 'Live changes'), liveState, log),
    h('section', { class: 'panel', 'aria-labelledby': 'run-h' },
      h('h2', { id: 'run-h' }, 'A run'),
      h('form', { class: 'toolbar', onsubmit: (event) => { event.preventDefault(); if (runInput.value) location.hash = runHref(ns, runInput.value); } },
        h('label', { for: 'run-id' }, 'Run id'), runInput, h('button', { type: 'submit', class: 'secondary' }, 'Open run'))),
  );

  function query() {
    const params = new URLSearchParams();
    if (at !== null) params.set('at', String(at));
    if (prefix) params.set('prefix', prefix);
    const text = params.toString();
    return text ? `?${text}` : '';
  }

  function setRange() {
    slider.min = String(oldest);
    slider.max = String(head);
    number.min = String(oldest);
    number.max = String(head);
    const shown = at ?? head;
    slider.value = String(shown);
    number.value = String(shown);
    slider.setAttribute('aria-valuetext', at === null ? `revision ${head}, now (live)` : `revision ${at} of ${head}`);
    liveButton.hidden = at === null;
    rollbackButton.hidden = at === null || at >= head;
    if (!rollbackButton.hidden) rollbackButton.textContent = `Roll back namespace to revision ${at}…`;
  }

  async function loadInfo() {
    const info = await api.info(ns, signal);
    head = info.revision;
    oldest = info.oldest_revision ?? 0;
    if (at !== null && at > head) at = head;
    fill(summary,
      h('div', {}, h('dt', {}, 'Head revision'), h('dd', { id: 'head' }, String(head))),
      h('div', {}, h('dt', {}, 'Keys'), h('dd', {}, String(info.keys))),
      h('div', {}, h('dt', {}, 'Bytes'), h('dd', {}, fmtBytes(info.bytes))),
      h('div', {}, h('dt', {}, 'Last change'), h('dd', {}, time(info.updated_at))),
      h('div', {}, h('dt', {}, 'Oldest kept revision'), h('dd', {}, String(oldest))));
    setRange();
  }

  async function describe() {
    const shown = at ?? head;
    const label = at === null ? `Now: revision ${head} (live). ` : `As of revision ${at} of ${head}. `;
    if (shown === 0) {
      fill(revInfo, label, 'Before the first write: the namespace was empty.');
      return;
    }
    try {
      const page = await api.changes(ns, { after: shown - 1, limit: 1 }, signal);
      const events = (page.events ?? []).filter((e) => e.revision === shown);
      if (!events.length) {
        fill(revInfo, label);
        return;
      }
      const first = events[0];
      fill(revInfo, label, 'Committed ', time(first.at), ': ',
        events.slice(0, 5).map((e, i) => [i ? ', ' : '', `${e.op} `, h('a', { href: keyHref(ns, e.key) }, e.key)]),
        events.length > 5 ? ` and ${events.length - 5} more` : '', ' ', provenance(ns, first));
    } catch (error) {
      fill(revInfo, label);
      if (error.status !== 410) showError(errors, error);
    }
  }

  let generation = 0; // bumped by each fresh load; answers of an older one are dropped
  async function loadKeys(reset) {
    if (reset) {
      generation += 1;
      cursor = null;
    }
    const gen = generation;
    const page = await api.keys(ns, { limit: PAGE, prefix, cursor, as_of: at }, signal);
    const keys = (page.keys ?? []).map((k) => k.key);
    const items = keys.length ? (await api.getMany(ns, keys, page.revision, signal)).items ?? {} : {};
    if (gen !== generation) return;
    if (reset) fill(tbody);
    for (const row of page.keys ?? []) {
      const item = items[row.key];
      tbody.append(h('tr', { 'data-key': row.key },
        h('th', { scope: 'row' }, h('a', { href: keyHref(ns, row.key) }, row.key)),
        h('td', {}, item ? h('code', { class: 'preview' }, preview(item.value)) : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'num' }, String(row.version)),
        h('td', {}, time(row.updated_at)),
        h('td', { class: 'num' }, fmtBytes(row.bytes))));
    }
    cursor = page.next_cursor ?? null;
    more.hidden = cursor === null;
    const count = tbody.children.length;
    fill(keyStatus, `${count} key${count === 1 ? '' : 's'}${cursor ? ' so far' : ''}${prefix ? ` starting with “${prefix}”` : ''}, as of revision ${page.revision}.`);
  }

  async function show(newAt) {
    at = newAt;
    history.replaceState(null, '', nsHref(ns, query()));
    setRange();
    fill(errors);
    try {
      await Promise.all([loadKeys(true), describe()]);
    } catch (error) {
      showError(errors, error);
    }
  }

  async function goToTime() {
    if (!when.value) return;
    const date = new Date(when.value);
    if (Number.isNaN(date.getTime())) return;
    fill(errors);
    try {
      const page = await api.keys(ns, { limit: 1, as_of: date.toISOString() }, signal);
      await show(page.revision);
    } catch (error) {
      showError(errors, error);
    }
  }

  const fromSlider = debounce((value) => show(value >= head ? null : value), 150);
  slider.addEventListener('input', () => {
    number.value = slider.value;
    fromSlider(Number(slider.value));
  });
  number.addEventListener('change', () => {
    const value = Math.min(Math.max(Number(number.value) || 0, oldest), head);
    show(value);
  });
  liveButton.addEventListener('click', () => show(null));
  prefixInput.addEventListener('input', debounce(() => {
    prefix = prefixInput.value;
    show(at);
  }, 200));
  more.addEventListener('click', () => loadKeys(false).catch((error) => showError(errors, error)));
  rollbackButton.addEventListener('click', async () => {
    const to = at;
    fill(errors);
    try {
      const dry = await api.rollback(ns, { to, dry_run: true });
      const ok = await confirmDryRun(ns, {
        title: `Roll back ${ns} to revision ${to}?`,
        intro: 'A rollback appends one new revision that makes every key as it was then; history is kept, so it can itself be rolled back.',
        result: dry,
        confirmLabel: 'Roll back',
      });
      if (!ok) return;
      const done = await api.rollback(ns, { to });
      await loadInfo();
      await show(null);
      errors.append(notice('ok', (done.changed ?? []).length
        ? `Rolled back: revision ${done.revision} written, ${(done.changed ?? []).length} key(s) changed.`
        : 'Nothing differed; nothing was written.'));
    } catch (error) {
      showError(errors, error);
    }
  });

  // Live updates while this view is open.
  const refresh = debounce(() => {
    if (at === null) loadKeys(true).then(flash).catch((error) => showError(errors, error));
    describe();
  }, 250);
  let touched = new Set();
  function flash() {
    for (const tr of tbody.querySelectorAll('tr')) {
      if (touched.has(tr.dataset.key)) tr.classList.add('flash');
    }
    touched = new Set();
  }

  function onEvent(event) {
    head = Math.max(head, event.revision);
    fill(summary.querySelector('#head') ?? h('span'), String(head));
    setRange();
    touched.add(event.key);
    log.prepend(h('li', {},
      h('span', { class: 'rev' }, `r${event.revision}`), ' ', time(event.at), ' ',
      h('span', { class: `op op-${event.op}` }, event.op), ' ', h('a', { href: keyHref(ns, event.key) }, event.key), ' ',
      event.op === 'set' ? h('code', { class: 'preview' }, preview(event.value, 60)) : null, ' ', provenance(ns, event)));
    while (log.children.length > LOG) log.lastChild.remove();
    refresh();
  }

  function onStatus(state, error) {
    if (state === 'live') fill(liveState, 'Watching: new writes appear here as they happen.');
    else if (state === 'reconnecting') fill(liveState, 'Connection lost; reconnecting…');
    else if (error) {
      fill(liveState, 'Not watching.');
      showError(errors, error);
    } else fill(liveState, 'Not watching.');
  }

  try {
    await loadInfo();
  } catch (error) {
    showError(errors, error);
    fill(liveState, 'Not watching.');
    return;
  }
  watch(ns, { after: head, prefix: null, signal, onEvent, onStatus });
  await show(at);
}
