// DOM helpers. Everything the server returns is put into the page as text (textContent or
// text nodes), never parsed as HTML: an agent-written value of "<script>" shows as text.

/** An element: h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child, ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A time (ISO string or Unix seconds) as a <time> element in local time, UTC in its title. */
export function time(at) {
  if (at === null || at === undefined) return h('span', { class: 'muted' }, '—');
  const date = typeof at === 'number' ? new Date(at * 1000) : new Date(at);
  if (Number.isNaN(date.getTime())) return h('span', {}, String(at));
  const iso = typeof at === 'string' ? at : date.toISOString();
  return h('time', { datetime: iso, title: iso }, date.toLocaleString());
}

/** JSON text of a value, pretty-printed. */
export function pretty(value) {
  const text = JSON.stringify(value, null, 2);
  return text === undefined ? 'null' : text;
}

/** One line of at most max characters of a value's compact JSON. */
export function preview(value, max = 120) {
  let text = JSON.stringify(value);
  if (text === undefined) text = 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const COLLAPSE_CHARS = 800;
const COLLAPSE_LINES = 16;

/** A value as preformatted JSON; large values start collapsed behind a <details>. */
export function valueBlock(value, label = 'Value') {
  const text = pretty(value);
  const lines = text.split('\n').length;
  const pre = h('pre', { class: 'value' }, text);
  if (text.length <= COLLAPSE_CHARS && lines <= COLLAPSE_LINES) return pre;
  return h(
    'details',
    { class: 'collapsed' },
    h('summary', {}, `${label}: ${fmtBytes(new TextEncoder().encode(text).length)}, ${lines} lines (show)`),
    pre,
  );
}

/** A message box; kind: error | info | ok. */
export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, children);
}

/** "—" for null, else the text. */
export function orDash(value) {
  return value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, '—') : String(value);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
