/**
 * Small hooks the views share: a debounced value, a throttled callback, a
 * clock that ticks so "3 min ago" stays true, and the hash route.
 */
import { useEffect, useRef, useState } from 'preact/hooks';

/** `value`, once it has not changed for `ms`. */
export function useDebounced(value, ms) {
  const [v, set] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => set(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** A function that runs fn at most once per `ms` (the last call always runs). */
export function useThrottled(fn, ms) {
  const ref = useRef({ fn, timer: null, last: 0 });
  ref.current.fn = fn;
  useEffect(() => () => clearTimeout(ref.current.timer), []);
  return useRef(() => {
    const r = ref.current;
    if (r.timer !== null) return;
    const wait = Math.max(0, r.last + ms - Date.now());
    r.timer = setTimeout(() => { r.timer = null; r.last = Date.now(); r.fn(); }, wait);
  }).current;
}

/** The current time, updated every `ms`. */
export function useNow(ms = 30_000) {
  const [now, set] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => set(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = h.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { view: parts[0] || 'fleet', arg: parts[1] ?? null, params: Object.fromEntries(new URLSearchParams(search)) };
}

/** The route in the location hash: `#/<view>/<arg>?<params>`. */
export function useRoute() {
  const [route, set] = useState(parseHash);
  useEffect(() => {
    const on = () => set(parseHash());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** The hash for a route; empty params are left out. */
export function href(view, arg = null, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return `#/${view}${arg ? `/${encodeURIComponent(arg)}` : ''}${s ? `?${s}` : ''}`;
}

/** Goes to a route; `replace` keeps the browser history short while typing in filters. */
export function navigate(hash, replace = false) {
  if (replace) history.replaceState(null, '', hash);
  else history.pushState(null, '', hash);
  dispatchEvent(new HashChangeEvent('hashchange'));
}
