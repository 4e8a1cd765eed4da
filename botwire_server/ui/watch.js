// Live updates: the watch route's Server-Sent Events, read with fetch() and a streaming body
// reader, because EventSource cannot send an Authorization header. Reconnects after an error
// from the last revision whose events all arrived (the `id:` of the stream), so nothing is
// lost or repeated.

import { ApiError, authHeaders, seg, unauthenticated, withQuery } from './api.js';

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * Follow namespace `ns` from revision `after` until `signal` aborts. Calls onEvent(event) for
 * each change event and onStatus(state, error?) with state 'live' | 'reconnecting' | 'stopped'.
 */
export function watch(ns, { after, prefix, signal, onEvent, onStatus }) {
  let last = after;
  let delay = 500;

  function dispatch(block) {
    let event = 'message';
    let id = null;
    const data = [];
    for (const line of block.split(/\r\n|\r|\n/)) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
    if (event === 'change' && data.length) onEvent(JSON.parse(data.join('\n')));
    if (event === 'error' && data.length) {
      const body = JSON.parse(data.join('\n'));
      throw new ApiError(body.status ?? 500, body);
    }
    if (id !== null && /^[0-9]+$/.test(id)) last = Number(id);
  }

  async function follow() {
    const url = withQuery(`/namespaces/${seg(ns)}/watch`, { after: last, prefix });
    const response = await fetch(url, {
      headers: authHeaders({ Accept: 'text/event-stream' }),
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new ApiError(response.status, body);
    }
    onStatus('live');
    delay = 500;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = buffer.search(/\r\n\r\n|\n\n|\r\r/);
        if (end < 0) break;
        const sep = buffer.startsWith('\r\n\r\n', end) ? 4 : 2;
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + sep);
      }
    }
  }

  (async () => {
    while (!signal.aborted) {
      try {
        await follow();
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          if (error.status === 401) unauthenticated(error);
          onStatus('stopped', error);
          return;
        }
        onStatus('reconnecting', error);
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10000);
    }
    onStatus('stopped');
  })();
}
