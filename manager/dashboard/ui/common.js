/**
 * Small pieces every view uses: the API error box, presence dots, status
 * badges, the stacked progress bar, the pager and empty/loading states.
 */
import { html } from 'htm/preact';
import { presence, time, full } from '../lib/format.js';

/** An API error with its code and message; 403 says plainly that the role does not allow it. */
export function ErrorBox({ error, title }) {
  if (!error) return null;
  const denied = error.status === 403;
  return html`<div class="error" role="alert">
    ${title ? html`<strong>${title}: </strong>` : null}
    ${denied ? html`<strong>Not allowed. </strong>` : null}
    <code class="code">${error.code || 'error'}</code> ${error.message}
    ${denied ? html`<div class="hint">Your operator role does not permit this action; ask an administrator.</div>` : null}
    ${error.status === 401 ? html`<div class="hint">The manager did not accept your credentials; check that the browser presents your operator certificate.</div>` : null}
  </div>`;
}

/** A coloured dot for online (green), offline (red) or never seen (grey). */
export function Dot({ online, label }) {
  const cls = online === true ? 'on' : online === false ? 'off' : 'unknown';
  return html`<span class=${`dot ${cls}`} title=${label ?? presence(online)}></span>`;
}

/** Presence with since-when: "offline since 10:42". */
export function Presence({ online, since, now }) {
  return html`<span class=${online === false ? 'presence offline' : 'presence'} title=${full(since)}>
    <${Dot} online=${online} /> ${presence(online)}${since ? html` <span class="muted">since ${time(since, now)}</span>` : null}
  </span>`;
}

/** A step or rotation status as a coloured badge. */
export function Badge({ status, children }) {
  return html`<span class=${`badge s-${status}`}>${children ?? status}</span>`;
}

const PARTS = ['acked', 'sent', 'failed', 'excluded', 'pending'];

/** One stacked bar: acked, sent, failed, excluded, pending out of total. */
export function StackedBar({ counts, total, label }) {
  const t = Math.max(total, 1);
  const title = PARTS.filter((p) => counts[p]).map((p) => `${counts[p]} ${p}`).join(', ') || 'nothing yet';
  return html`<div class="bar" role="img" aria-label=${`${label ?? ''} ${title}`} title=${title}>
    ${PARTS.map((p) => counts[p] ? html`<span class=${`seg s-${p}`} style=${`width:${(100 * counts[p]) / t}%`}></span>` : null)}
  </div>`;
}

/** "Loading…" while there is nothing yet to show. */
export function Loading({ what }) {
  return html`<p class="muted loading">Loading ${what}…</p>`;
}

/** Offset/limit pager: "101–200 of 10,000" with previous/next. */
export function Pager({ offset, limit, total, onChange }) {
  const last = Math.min(offset + limit, total);
  return html`<div class="pager">
    <button type="button" disabled=${offset <= 0} onClick=${() => onChange(0)} title="First page">«</button>
    <button type="button" disabled=${offset <= 0} onClick=${() => onChange(Math.max(0, offset - limit))}>‹ Previous</button>
    <span class="range">${total === 0 ? 'none' : `${(offset + 1).toLocaleString('en-US')}–${last.toLocaleString('en-US')} of ${total.toLocaleString('en-US')}`}</span>
    <button type="button" disabled=${last >= total} onClick=${() => onChange(offset + limit)}>Next ›</button>
    <button type="button" disabled=${last >= total} onClick=${() => onChange(Math.max(0, Math.floor((total - 1) / limit) * limit))} title="Last page">»</button>
  </div>`;
}

/** A label/value list for detail panels. */
export function Facts({ rows }) {
  return html`<dl class="facts">${rows.filter(Boolean).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}
