// A readable diff of two JSON values: the paths that were added, removed or changed, and for
// multi-line strings the lines. `diff(before, after)` returns rows {kind, path, before, after}
// with kind 'add' | 'remove' | 'change' | 'lines' (a string's line diff in `lines`).

import { h, preview } from './dom.js';

const ABSENT = Symbol('absent');
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const MAX_LCS = 400; // items or lines; beyond it arrays compare by index

const child = (path, name) =>
  /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? (path ? `${path}.${name}` : name) : `${path}[${JSON.stringify(name)}]`;

/** The longest common subsequence of a and b as pairs of indexes [[i, j], ...]. */
function lcs(a, b, eq) {
  const n = a.length;
  const m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      table[i][j] = eq(a[i], b[j]) ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const pairs = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (eq(a[i], b[j])) {
      pairs.push([i, j]);
      i += 1;
      j += 1;
    } else if (table[i + 1][j] >= table[i][j + 1]) i += 1;
    else j += 1;
  }
  return pairs;
}

/** Line-by-line edit script of two strings: [{op: ' ' | '-' | '+', text}]. */
export function lineDiff(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length > MAX_LCS || y.length > MAX_LCS) {
    return [...x.map((text) => ({ op: '-', text })), ...y.map((text) => ({ op: '+', text }))];
  }
  const out = [];
  let i = 0;
  let j = 0;
  for (const [pi, pj] of [...lcs(x, y, (p, q) => p === q), [x.length, y.length]]) {
    while (i < pi) out.push({ op: '-', text: x[i++] });
    while (j < pj) out.push({ op: '+', text: y[j++] });
    if (pi < x.length) out.push({ op: ' ', text: x[pi] });
    i = pi + 1;
    j = pj + 1;
  }
  return out;
}

export function diff(before, after, path = '') {
  if (before === ABSENT && after === ABSENT) return [];
  if (before === ABSENT) return [{ kind: 'add', path, after }];
  if (after === ABSENT) return [{ kind: 'remove', path, before }];
  if (same(before, after)) return [];
  if (isObject(before) && isObject(after)) {
    const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return names.flatMap((name) =>
      diff(name in before ? before[name] : ABSENT, name in after ? after[name] : ABSENT, child(path, name)),
    );
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    if (before.length === after.length || before.length > MAX_LCS || after.length > MAX_LCS) {
      const n = Math.max(before.length, after.length);
      const rows = [];
      for (let i = 0; i < n; i += 1) {
        rows.push(...diff(i < before.length ? before[i] : ABSENT, i < after.length ? after[i] : ABSENT, `${path}[${i}]`));
      }
      return rows;
    }
    // Insertions and removals in a list: match equal items, report the rest.
    const rows = [];
    let i = 0;
    let j = 0;
    for (const [pi, pj] of [...lcs(before, after, same), [before.length, after.length]]) {
      while (i < pi && j < pj) rows.push(...diff(before[i], after[j], `${path}[${j}]`)), (i += 1), (j += 1);
      while (i < pi) rows.push({ kind: 'remove', path: `${path}[${i}]`, before: before[i++] });
      while (j < pj) rows.push({ kind: 'add', path: `${path}[${j}]`, after: after[j++] });
      i = pi + 1;
      j = pj + 1;
    }
    return rows;
  }
  if (typeof before === 'string' && typeof after === 'string' && (before.includes('\n') || after.includes('\n'))) {
    return [{ kind: 'lines', path, lines: lineDiff(before, after) }];
  }
  return [{ kind: 'change', path, before, after }];
}

/** The diff between a key's value before and after (undefined: the key is absent) as a list. */
export function diffView(before, after) {
  const rows = diff(before === undefined ? ABSENT : before, after === undefined ? ABSENT : after);
  if (!rows.length) return h('p', { class: 'muted diff-none' }, 'No change in value.');
  const list = h('ul', { class: 'diff', 'aria-label': 'Changes' });
  for (const row of rows.slice(0, 500)) {
    const path = h('code', { class: 'path' }, row.path || '(value)');
    if (row.kind === 'add') {
      list.append(h('li', { class: 'add' }, h('span', { class: 'sign', 'aria-label': 'added' }, '+'), path, ' ', h('code', {}, preview(row.after, 400))));
    } else if (row.kind === 'remove') {
      list.append(h('li', { class: 'remove' }, h('span', { class: 'sign', 'aria-label': 'removed' }, '−'), path, ' ', h('code', {}, preview(row.before, 400))));
    } else if (row.kind === 'change') {
      list.append(
        h('li', { class: 'change' }, h('span', { class: 'sign', 'aria-label': 'changed' }, '~'), path, ' ',
          h('del', {}, preview(row.before, 300)), h('span', { class: 'arrow', 'aria-hidden': 'true' }, ' → '),
          h('span', { class: 'visually-hidden' }, ' changed to '), h('ins', {}, preview(row.after, 300))),
      );
    } else {
      const pre = h('pre', { class: 'lines' });
      for (const line of row.lines) {
        pre.append(h('span', { class: line.op === '+' ? 'add' : line.op === '-' ? 'remove' : 'same' }, `${line.op} ${line.text}\n`));
      }
      list.append(h('li', { class: 'change' }, h('span', { class: 'sign', 'aria-label': 'changed' }, '~'), path, ' (text)', pre));
    }
  }
  if (rows.length > 500) list.append(h('li', { class: 'muted' }, `… and ${rows.length - 500} more changes`));
  return list;
}
