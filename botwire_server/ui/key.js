// The key view: its current value and its timeline, newest first and paged: each version with
// time, op, who and why (actor, run, agent, reason, when the server records them) and the diff
// from the version before it; a rollback of the key to any version, dry run first.

import { api } from './api.js';
import { confirmDryRun } from './confirm.js';
import { diffView } from './diff.js';
import { debounce, fill, fmtBytes, h, notice, orDash, pretty, time, valueBlock } from './dom.js';
import { nsHref, runHref } from './links.js';
import { watch } from './watch.js';

const PAGE = 20;

/** A version's whole value, collapsed: the diff above is what changed. */
function fullValue(value) {
  const text = pretty(value);
  return h('details', { class: 'collapsed' },
    h('summary', {}, `Whole value (${fmtBytes(new TextEncoder().encode(text).length)})`),
    h('pre', { class: 'value' }, text));
}

export async function renderKey({ main, signal, route, showError }) {
  const { ns, key } = route;
  const errors = h('div');
  const current = h('section', { class: 'panel', 'aria-labelledby': 'current-h' });
  const timeline = h('ol', { class: 'timeline' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older versions');
  const status = h('p', { class: 'muted', role: 'status' });
  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/' }, 'Namespaces'), ' / ', h('a', { href: nsHref(ns) }, ns), ' / ', h('span', {}, key)),
    h('h1', { tabindex: '-1' }, h('span', { class: 'muted' }, 'Key '), key),
    errors,
    current,
    h('section', { class: 'panel', 'aria-labelledby': 'timeline-h' },
      h('h2', { id: 'timeline-h' }, 'Timeline'), status, timeline, more),
  );

  const events = []; // newest first, every page loaded so far
  let cursor = null;
  let head = null;
  let pages = 0;
  let generation = 0; // bumped by each reload; answers of an older one are dropped

  /** The current value and the first page of the timeline, afresh. */
  function reloadAll() {
    generation += 1;
    events.length = 0;
    cursor = null;
    head = null;
    pages = 0;
    return Promise.all([loadCurrent(), loadPage()]);
  }

  async function loadCurrent() {
    const gen = generation;
    let body;
    try {
      const item = await api.item(ns, key, signal);
      body = [
        h('dl', { class: 'summary' },
          h('div', {}, h('dt', {}, 'Version'), h('dd', {}, String(item.version))),
          h('div', {}, h('dt', {}, 'Created at revision'), h('dd', {}, String(item.created_revision))),
          h('div', {}, h('dt', {}, 'Updated'), h('dd', {}, time(item.updated_at))),
          h('div', {}, h('dt', {}, 'Expires'), h('dd', {}, time(item.expires_at)))),
        valueBlock(item.value)];
    } catch (error) {
      if (error.status === 404 && error.code === 'key_not_found') {
        body = [h('p', { class: 'muted' }, 'The key does not exist now (deleted, expired or never written); its history is below.')];
      } else throw error;
    }
    if (gen === generation) fill(current, h('h2', { id: 'current-h' }, 'Current value'), body);
  }

  function meta(event) {
    const row = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
    return h('dl', { class: 'meta' },
      row('Time', time(event.at)),
      row('Actor', orDash(event.actor)),
      row('Run', event.run ? h('a', { href: runHref(ns, event.run) }, event.run) : orDash(null)),
      row('Agent', orDash(event.agent)),
      row('Reason', orDash(event.reason)));
  }

  function entry(event, index) {
    const older = events[index + 1];
    const before = older === undefined || older.op !== 'set' ? undefined : older.value;
    const after = event.op === 'set' ? event.value : undefined;
    let change;
    if (older === undefined && cursor !== null) change = h('p', { class: 'muted' }, 'Load older versions to see what this one changed.');
    else change = diffView(before, after);
    const restore = index === 0
      ? null
      : h('button', { type: 'button', class: 'secondary small', onclick: () => restoreTo(event) }, `Roll back key to revision ${event.revision}…`);
    return h('li', { class: `event ev-${event.op}` },
      h('article', { 'aria-label': `Revision ${event.revision}` },
        h('h3', {}, h('span', { class: 'rev' }, `Revision ${event.revision}`), ' ',
          h('span', { class: `op op-${event.op}` }, event.op), index === 0 ? h('span', { class: 'badge' }, 'latest') : null),
        meta(event),
        h('div', { class: 'change' }, h('h4', {}, older === undefined && cursor === null ? 'First version in the kept history' : 'Change from the previous version'), change),
        event.op === 'set' ? fullValue(event.value) : h('p', { class: 'muted' }, event.op === 'delete' ? 'Deleted.' : 'Expired.'),
        restore));
  }

  function draw() {
    fill(timeline, events.map(entry));
    more.hidden = cursor === null;
    fill(status, `${events.length} version${events.length === 1 ? '' : 's'} shown${cursor ? '; older ones on the next page' : ''}.`);
  }

  async function loadPage() {
    const gen = generation;
    const page = await api.history(ns, key, { limit: PAGE, cursor }, signal);
    if (gen !== generation) return; // a reload started meanwhile
    events.push(...(page.events ?? []));
    cursor = page.next_cursor ?? null;
    pages += 1;
    if (head === null && events.length) head = events[0].revision;
    draw();
  }

  async function restoreTo(event) {
    fill(errors);
    try {
      const dry = await api.rollback(ns, { to: event.revision, key, dry_run: true });
      const ok = await confirmDryRun(ns, {
        title: `Roll back ${key} to revision ${event.revision}?`,
        intro: 'This appends one new revision that gives the key its value as of that revision; its history is kept.',
        result: dry,
        confirmLabel: 'Roll back key',
      });
      if (!ok) return;
      const done = await api.rollback(ns, { to: event.revision, key });
      await reloadAll();
      errors.append(notice('ok', (done.changed ?? []).length ? `Rolled back: revision ${done.revision} written.` : 'Nothing differed; nothing was written.'));
    } catch (error) {
      showError(errors, error);
    }
  }

  more.addEventListener('click', () => loadPage().catch((error) => showError(errors, error)));
  let info;
  try {
    [info] = await Promise.all([api.info(ns, signal), loadCurrent(), loadPage()]);
    if (!events.length) errors.append(notice('info', 'This key has no history (it was never written, or its history was compacted).'));
  } catch (error) {
    showError(errors, error);
    return;
  }
  // A new version of this key, written by anyone, appears at the top of the timeline.
  const reload = debounce(() => {
    if (pages > 1) return; // older pages are open: keep the reader's place
    reloadAll().catch((error) => showError(errors, error));
  }, 250);
  watch(ns, {
    after: info.revision,
    prefix: key,
    signal,
    onEvent: (event) => {
      if (event.key === key) reload();
    },
    onStatus: () => {},
  });
}
