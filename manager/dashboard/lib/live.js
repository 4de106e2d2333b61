/**
 * Live updates: one EventSource on /api/events for the whole page, shared by
 * every view through useLive(). The browser retries a dropped stream by
 * itself; when it gives up (for example the manager answered 5xx or
 * restarted with another certificate) we open a new one with back-off. After
 * a reconnect every subscriber of 'reconnect' reloads, since events sent
 * while away are lost.
 */
import { useEffect, useRef, useState } from 'preact/hooks';

const TYPES = ['fleet', 'rotation', 'broker', 'audit'];
const subscribers = new Map();
const stateSubscribers = new Set();
let source = null;
let state = 'connecting';
let everOpen = false;
let retryMs = 1000;
let retryTimer = null;

function emit(type, data) {
  for (const fn of subscribers.get(type) ?? []) {
    try { fn(data); } catch (e) { console.error(`live ${type} handler failed`, e); }
  }
}

function setState(next) {
  if (next === state) return;
  state = next;
  for (const fn of stateSubscribers) fn(state);
}

function onMessage(type, msg) {
  let data;
  try { data = JSON.parse(msg.data); } catch { console.warn(`live: ${type} event is not JSON`); return; }
  const t = type === 'message' ? data && data.type : type;
  if (TYPES.includes(t)) emit(t, data);
}

function connect() {
  retryTimer = null;
  const es = new EventSource('/api/events');
  source = es;
  es.onopen = () => {
    retryMs = 1000;
    setState('open');
    if (everOpen) emit('reconnect', null);
    everOpen = true;
  };
  es.onerror = () => {
    if (source !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      setState('down');
      es.close();
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    } else {
      setState('reconnecting');
    }
  };
  for (const t of [...TYPES, 'message']) es.addEventListener(t, (m) => onMessage(t, m));
}

/** Opens the live stream once per page. */
export function startLive() {
  if (source === null && retryTimer === null) connect();
}

/** Calls fn(event) for each live event of `type` ('fleet' | 'rotation' | 'broker' | 'audit' | 'reconnect'). */
export function useLive(type, fn) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const call = (d) => ref.current(d);
    if (!subscribers.has(type)) subscribers.set(type, new Set());
    subscribers.get(type).add(call);
    return () => subscribers.get(type).delete(call);
  }, [type]);
}

/** The live stream's state: 'connecting' | 'open' | 'reconnecting' | 'down'. */
export function useLiveState() {
  const [s, set] = useState(state);
  useEffect(() => {
    stateSubscribers.add(set);
    set(state);
    return () => stateSubscribers.delete(set);
  }, []);
  return s;
}
