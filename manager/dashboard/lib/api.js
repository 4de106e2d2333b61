/**
 * Talking to the manager's HTTP API (manager/http/api-types.ts): one fetch
 * wrapper that turns every failure into an ApiError with the API's code and
 * message, and a hook that loads a resource and keeps the last good data
 * while it reloads.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

/** A failed API call: HTTP status (0 when the manager did not answer), the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves to the parsed JSON body, rejects with ApiError. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  let res;
  try {
    res = await fetch(path, {
      method,
      signal,
      credentials: 'same-origin',
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'no answer', `The manager did not answer (${e.message}); check that it is running and reachable.`);
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* reported below if the status is an error */ }
  if (!res.ok) {
    const err = json && json.error;
    const code = (err && err.code) || `HTTP ${res.status}`;
    const message = (err && err.message) || text.slice(0, 300) || res.statusText;
    // Manager messages may repeat the code in front ("E_FORBIDDEN: ..."); it is shown once.
    throw new ApiError(res.status, code, message.startsWith(`${code}: `) ? message.slice(code.length + 2) : message);
  }
  if (json === null && text) throw new ApiError(res.status, 'bad answer', `${path} did not answer with JSON.`);
  return json;
}

/** Builds a query string from the set (non-empty) values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Loads `path` (null: nothing) and reloads when it changes or reload() is
 * called; keeps the previous data while a reload is in flight, so tables do
 * not flicker. Returns { data, error, loading, reload }.
 */
export function useApi(path) {
  const [state, setState] = useState({ data: null, error: null, loading: path !== null, path });
  const [tick, setTick] = useState(0);
  const current = useRef(null);
  useEffect(() => {
    if (path === null) { setState({ data: null, error: null, loading: false, path }); return undefined; }
    const ctl = new AbortController();
    current.current = ctl;
    setState((s) => ({ ...s, loading: true }));
    api(path, { signal: ctl.signal }).then(
      (data) => { if (!ctl.signal.aborted) setState({ data, error: null, loading: false, path }); },
      (error) => { if (!ctl.signal.aborted) setState((s) => ({ data: s.path === path ? s.data : null, error, loading: false, path })); },
    );
    return () => ctl.abort();
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}
