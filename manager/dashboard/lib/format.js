/**
 * How the dashboard writes times, counts and fingerprints, so every view
 * says them the same way: local times ("10:42", "24 Nov 10:42"), durations
 * ("3 min"), short fingerprints (first 4 bytes, the full one in a tooltip).
 */

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
const pad = (n) => String(n).padStart(2, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "10:42" today, "24 Nov 10:42" this year, else "24 Nov 2027"; "—" for null. */
export function time(iso, now = Date.now()) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const n = new Date(now);
  if (sameDay(d, n)) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.getFullYear() === n.getFullYear()) return `${d.getDate()} ${MONTHS[d.getMonth()]} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return date(iso);
}

/** Like time() with seconds: "10:42:07" today, "24 Nov 10:42:07" otherwise (logs). */
export function timeSec(iso, now = Date.now()) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return sameDay(d, new Date(now)) ? hms : `${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${hms}`;
}

/** "24 Nov 2027". */
export function date(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()}`;
}

/** Full local date and time, for tooltips. */
export function full(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.toLocaleString()} (${iso})`;
}

/** A duration in words: "12 s", "3 min", "2 h 5 min", "4 days". */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} days`;
}

/** How long ago: "3 min ago". */
export function ago(iso, now = Date.now()) {
  return iso ? `${duration(now - new Date(iso).getTime())} ago` : '—';
}

/** First 4 bytes of a hex fingerprint, grouped: "3f2a:91c0". */
export function fp(sha256) {
  if (!sha256) return '—';
  const h = sha256.replace(/[^0-9a-f]/gi, '').toLowerCase();
  return `${h.slice(0, 4)}:${h.slice(4, 8)}`;
}

/** A hex fingerprint grouped in pairs, for display in full. */
export function fpFull(sha256) {
  return (sha256 || '').replace(/[^0-9a-f]/gi, '').toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/** 12345 → "12,345"; null → "—". */
export function num(n, digits = 0) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Days until expiry in words, with the tone to show it in. */
export function expiry(daysLeft) {
  if (daysLeft === null || daysLeft === undefined) return { text: '—', tone: '' };
  if (daysLeft < 0) return { text: `expired ${-daysLeft} d ago`, tone: 'bad' };
  if (daysLeft < 30) return { text: `${daysLeft} d left`, tone: 'warn' };
  return { text: `${daysLeft} d left`, tone: '' };
}

/** Presence in words: "online", "offline", "never seen". */
export function presence(online) {
  return online === true ? 'online' : online === false ? 'offline' : 'never seen';
}
