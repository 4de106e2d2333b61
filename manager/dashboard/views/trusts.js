/**
 * The roots a device trusts, as chips: shared by the fleet table and the
 * device panel (each imports it from here, neither from the other).
 */
import { html } from 'htm/preact';
import { fp, fpFull } from '../lib/format.js';

/** Trust chips: "R0 3f2a:91c0", the full fingerprint in the tooltip. */
export function Trusts({ trusts }) {
  if (!trusts || trusts.length === 0) return html`<span class="muted">—</span>`;
  return html`<span class="trusts">${trusts.map((t) => html`<span class=${`chip l-${t.label}`}
      title=${`${t.slot} root: ${t.label === 'unknown' ? 'not a root the manager knows' : t.label}\nSHA-256 ${fpFull(t.sha256)}`}>${t.label === 'unknown' ? '?' : t.label} <code>${fp(t.sha256)}</code></span>`)}</span>`;
}
