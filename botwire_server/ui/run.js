// The run view: the events one run wrote (PRODUCT.md section 9), oldest first, and a revert of
// the run, its dry-run diff shown before confirming. Keys that someone else wrote after the
// run are left alone by the server and listed as skipped.

import { api } from './api.js';
import { confirmDryRun } from './confirm.js';
import { fill, h, notice, orDash, preview, time } from './dom.js';
import { keyHref, nsHref } from './links.js';

export async function renderRun({ main, signal, route, showError }) {
  const { ns, run } = route;
  const errors = h('div');
  const tbody = h('tbody');
  const status = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More events');
  const revert = h('button', { type: 'button', class: 'danger' }, 'Revert this run…');
  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/' }, 'Namespaces'), ' / ', h('a', { href: nsHref(ns) }, ns), ' / ', h('span', {}, `run ${run}`)),
    h('h1', { tabindex: '-1' }, h('span', { class: 'muted' }, 'Run '), run),
    errors,
    h('section', { class: 'panel', 'aria-labelledby': 'writes-h' },
      h('h2', { id: 'writes-h' }, 'What it wrote'), status,
      h('div', { class: 'scroll' },
        h('table', { class: 'grid run' },
          h('caption', { class: 'visually-hidden' }, 'Events of this run'),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', class: 'num' }, 'Revision'), h('th', { scope: 'col' }, 'Time'),
            h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Op'), h('th', { scope: 'col' }, 'Value'),
            h('th', { scope: 'col' }, 'Agent'), h('th', { scope: 'col' }, 'Reason'), h('th', { scope: 'col' }, 'Actor'))),
          tbody)),
      more),
    h('section', { class: 'panel', 'aria-labelledby': 'revert-h' },
      h('h2', { id: 'revert-h' }, 'Undo'),
      h('p', {}, 'A revert gives every key this run wrote the value it had just before the run, in one new revision, except keys that someone else wrote since: those are left alone. You see the dry run first.'),
      revert),
  );

  let cursor = null;
  let count = 0;
  async function load() {
    const page = await api.run(ns, run, cursor === null ? {} : { cursor }, signal);
    const events = Array.isArray(page) ? page : page?.events ?? [];
    for (const e of events) {
      tbody.append(h('tr', {},
        h('td', { class: 'num' }, String(e.revision)), h('td', {}, time(e.at)),
        h('th', { scope: 'row' }, h('a', { href: keyHref(ns, e.key) }, e.key)),
        h('td', {}, h('span', { class: `op op-${e.op}` }, e.op)),
        h('td', {}, e.op === 'set' ? h('code', { class: 'preview' }, preview(e.value)) : orDash(null)),
        h('td', {}, orDash(e.agent)), h('td', {}, orDash(e.reason)), h('td', {}, orDash(e.actor))));
      count += 1;
    }
    cursor = page?.next_cursor ?? null;
    more.hidden = cursor === null;
    fill(status, count ? `${count} event${count === 1 ? '' : 's'}, oldest first.` : 'This run wrote nothing in this namespace (or its events were compacted).');
  }

  revert.addEventListener('click', async () => {
    fill(errors);
    try {
      const dry = await api.revert(ns, run, true);
      const ok = await confirmDryRun(ns, {
        title: `Revert run ${run}?`,
        intro: 'Dry run: what the revert would write. Nothing is written until you confirm.',
        result: dry,
        confirmLabel: 'Revert run',
      });
      if (!ok) return;
      const done = await api.revert(ns, run, false);
      const skipped = (done.skipped ?? []).length;
      errors.append(notice('ok', (done.changed ?? []).length
        ? `Reverted: revision ${done.revision} written, ${(done.changed ?? []).length} key(s) changed${skipped ? `, ${skipped} left alone` : ''}.`
        : 'Nothing to revert; nothing was written.'));
    } catch (error) {
      showError(errors, error);
    }
  });
  more.addEventListener('click', () => load().catch((error) => showError(errors, error)));

  try {
    await load();
  } catch (error) {
    if (error.status === 404 && error.code === 'route_not_found') {
      errors.append(notice('error', 'This server does not record runs (it has no /namespaces/{ns}/runs route).'));
      revert.disabled = true;
    } else showError(errors, error);
  }
}
