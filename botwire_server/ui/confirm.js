// The dry-run dialog: what a rollback or run revert would change, key by key with the diff
// from the current value, and what it would leave alone; nothing is written until the user
// confirms.

import { currentValues } from './api.js';
import { diffView } from './diff.js';
import { h, orDash } from './dom.js';

// The server's reasons for leaving a key alone, in words (others are shown as sent).
const REASONS = {
  written_by_others: 'written by someone else since the run; left as it is',
};

/**
 * Show a dry run's result ({changed: [{key, op, value}], skipped?: [{key, reason,
 * current_version}]}) and resolve to true when the user confirms, false otherwise.
 */
export async function confirmDryRun(ns, { title, intro, result, confirmLabel }) {
  const changed = result.changed ?? [];
  const skipped = result.skipped ?? [];
  const current = await currentValues(ns, changed.map((c) => c.key));
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
  const body = [h('h2', { id: 'confirm-title' }, title), h('p', {}, intro)];
  if (!changed.length) {
    body.push(h('p', { class: 'notice info', role: 'status' }, 'Nothing would change: the current values already match. Nothing will be written.'));
  } else {
    body.push(h('p', {}, `${changed.length} key${changed.length === 1 ? '' : 's'} would change (dry run; nothing written yet):`));
    const list = h('ol', { class: 'dry-run' });
    for (const c of changed) {
      const after = c.op === 'delete' ? undefined : c.value;
      list.append(
        h('li', {}, h('p', {}, h('strong', { class: 'key' }, c.key), ' ', h('span', { class: `op op-${c.op}` }, c.op === 'delete' ? 'delete' : 'set')),
          diffView(current.get(c.key), after)),
      );
    }
    body.push(list);
  }
  if (skipped.length) {
    body.push(h('p', {}, `${skipped.length} key${skipped.length === 1 ? '' : 's'} left alone:`));
    body.push(h('ul', { class: 'skipped' }, skipped.map((s) =>
      h('li', {}, h('strong', { class: 'key' }, s.key), ': ', REASONS[s.reason] ?? orDash(s.reason), s.current_version !== undefined ? ` (now at version ${s.current_version})` : ''))));
  }
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const ok = h('button', { type: 'button', class: 'danger', disabled: !changed.length }, confirmLabel);
  body.push(h('div', { class: 'actions' }, cancel, ok));
  dialog.append(...body);
  document.body.append(dialog);
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener('click', () => done(false));
    ok.addEventListener('click', () => done(true));
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      done(false);
    });
    dialog.showModal();
    cancel.focus();
  });
}
