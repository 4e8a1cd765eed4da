// The API client of the inspector: every request goes to this origin with the token, if any,
// as a bearer header. The token lives in sessionStorage only (this tab, until it closes) and
// never in a URL.

const TOKEN_KEY = 'botwire.token';

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An error answer of the server ({error, code, status, ...}) or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `The server answered HTTP ${status}.`);
    this.status = status;
    this.code = body?.code ?? null;
    this.body = body;
  }
}

/** One path segment: a namespace, key or run name, '/' included, percent-encoded. */
export const seg = (name) => encodeURIComponent(name);

export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

export function withQuery(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Tell the page that the server wants a (valid) token. */
export function unauthenticated(error) {
  window.dispatchEvent(new CustomEvent('botwire:unauthenticated', { detail: error }));
}

export async function call(method, path, { query, body, signal, headers = {} } = {}) {
  const init = {
    method,
    headers: authHeaders(body === undefined ? headers : { ...headers, 'Content-Type': 'application/json' }),
    cache: 'no-store',
    credentials: 'omit',
    signal,
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(withQuery(path, query), init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, { error: `The server cannot be reached (${error.message}).`, code: 'network' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) unauthenticated(error);
    throw error;
  }
  return data;
}

const ns = (name) => `/namespaces/${seg(name)}`;

// Who and why of the inspector's own writes (PRODUCT.md section 9), so that a rollback or a
// revert made here shows as such in the timeline. ASCII only: header values cannot carry every
// name.
const because = (reason) => ({ 'BotWire-Agent': 'web-inspector', 'BotWire-Reason': reason });

export const api = {
  namespaces: (query, signal) => call('GET', '/namespaces', { query, signal }),
  info: (name, signal) => call('GET', ns(name), { signal }),
  keys: (name, query, signal) => call('GET', `/memory/${seg(name)}`, { query, signal }),
  getMany: (name, keys, asOf, signal) =>
    call('POST', `${ns(name)}/get`, { body: asOf === null || asOf === undefined ? { keys } : { keys, as_of: asOf }, signal }),
  item: (name, key, signal) => call('GET', `/memory/${seg(name)}/${seg(key)}`, { signal }),
  history: (name, key, query, signal) =>
    call('GET', `/memory/${seg(name)}/${seg(key)}/history`, { query, signal }),
  changes: (name, query, signal) => call('GET', `${ns(name)}/changes`, { query, signal }),
  rollback: (name, body) =>
    call('POST', `${ns(name)}/rollback`, {
      body,
      headers: body.dry_run ? {} : because(`${body.key === undefined ? 'namespace' : 'key'} rollback to revision ${body.to} in the web inspector`),
    }),
  run: (name, run, query, signal) => call('GET', `${ns(name)}/runs/${seg(run)}`, { query, signal }),
  revert: (name, run, dryRun) =>
    call('POST', `${ns(name)}/runs/${seg(run)}/revert`, {
      body: { dry_run: dryRun },
      headers: dryRun ? {} : because('run revert in the web inspector'),
    }),
};

/** The current values of keys (absent keys: undefined), read in pages of 1000. */
export async function currentValues(name, keys, signal) {
  const out = new Map();
  for (let i = 0; i < keys.length; i += 1000) {
    const page = await api.getMany(name, keys.slice(i, i + 1000), null, signal);
    for (const [key, item] of Object.entries(page.items ?? {})) {
      if (item) out.set(key, item.value);
    }
  }
  return out;
}
