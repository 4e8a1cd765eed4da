// Hash links of the inspector's views; names are percent-encoded path segments.
const e = encodeURIComponent;
export const nsHref = (ns, query = '') => `#/ns/${e(ns)}${query}`;
export const keyHref = (ns, key) => `#/ns/${e(ns)}/key/${e(key)}`;
export const runHref = (ns, run) => `#/ns/${e(ns)}/run/${e(run)}`;
