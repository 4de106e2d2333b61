/**
 * Certificates: the fleet's roots (active root, D and R1 of an open
 * rotation, management CA, operator CA) and when device certificates expire
 * (per month), on one time axis drawn in plain SVG, with the list below.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { useApi } from '../lib/api.js';
import { date, fpFull, fp, full, num } from '../lib/format.js';
import { ErrorBox, Loading } from '../ui/common.js';

const KIND = {
  'active-root': ['active root', '#1f6fb2'], distribution: ['distribution root D', '#d9822b'], 'new-root': ['new root R1', '#2e9e5b'],
  'old-with-new': ['OldWithNew', '#6b8e23'],
  'management-ca': ['management CA', '#7a4fb8'], 'operator-ca': ['operator CA', '#8c6d1f'],
};
const W = 1000;
const LEFT = 230;
const ROW = 30;
const DAY = 86_400_000;

/** Cuts a label to what fits left of the bars (the full name is in the tooltip). */
function fit(text, chars) { return text.length > chars ? `${text.slice(0, chars - 1)}…` : text; }

function monthStart(m) { return new Date(`${m}-01T00:00:00Z`).getTime(); }

/** The SVG timeline: one bar per root, a month histogram of device expiries, a "now" line. */
function Timeline({ view, range }) {
  const now = Date.now();
  const months = view.devices.byMonth;
  const ends = [...view.roots.map((r) => new Date(r.notAfter).getTime()), ...months.map((m) => monthStart(m.month) + 31 * DAY)];
  const starts = [...view.roots.map((r) => new Date(r.notBefore).getTime()), ...months.map((m) => monthStart(m.month))];
  let t0 = Math.min(now, ...starts);
  let t1 = Math.max(now + 30 * DAY, ...ends);
  if (range === 'soon') { t0 = now - 90 * DAY; t1 = now + 730 * DAY; }
  const x = (t) => LEFT + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * (W - LEFT - 10);
  const histH = 70;
  const top = 24;
  const h = top + view.roots.length * ROW + 20 + histH + 20;
  const maxCount = Math.max(1, ...months.map((m) => m.count));
  const years = [];
  for (let y = new Date(t0).getUTCFullYear() + 1; Date.UTC(y, 0, 1) <= t1; y++) years.push(y);
  const step = Math.ceil(years.length / 12);
  const hy = top + view.roots.length * ROW + 20;
  return html`<svg class="cert-timeline" viewBox=${`0 0 ${W} ${h}`} role="img" aria-label="Validity of the roots and device certificate expiry">
    ${years.filter((_, i) => i % step === 0).map((y) => html`<g><line x1=${x(Date.UTC(y, 0, 1))} x2=${x(Date.UTC(y, 0, 1))} y1=${top - 6} y2=${h - 16} class="tick" />
      <text x=${x(Date.UTC(y, 0, 1))} y=${top - 10} class="axis" text-anchor="middle">${y}</text></g>`)}
    ${view.roots.map((r, i) => {
      const [label, colour] = KIND[r.kind] ?? [r.kind, '#666'];
      const a = new Date(r.notBefore).getTime(); const b = new Date(r.notAfter).getTime();
      const y = top + i * ROW;
      return html`<g><title>${`${r.name} (${label})\n${r.subject}\n${date(r.notBefore)} – ${date(r.notAfter)}\nSHA-256 ${fpFull(r.sha256)}`}</title>
        <text x="4" y=${y + 17} class="label">${fit(r.name, 27)}</text>
        <text x="4" y=${y + 28} class="sublabel">${fit(label, 40)}</text>
        <rect x=${x(a)} y=${y + 6} width=${Math.max(2, x(b) - x(a))} height="16" rx="3" fill=${colour} opacity=${b < now ? 0.35 : 0.85} />
        ${b > t1 ? html`<text x=${W - 12} y=${y + 19} class="more" text-anchor="end">▶</text>` : null}</g>`;
    })}
    <text x="4" y=${hy + histH / 2} class="label">Device certificates</text>
    <text x="4" y=${hy + histH / 2 + 12} class="sublabel">expiring per month (${num(view.devices.count)})</text>
    <line x1=${LEFT} x2=${W - 10} y1=${hy + histH} y2=${hy + histH} class="tick" />
    ${months.map((m) => {
      const a = monthStart(m.month); const b = a + 30 * DAY; const hh = (m.count / maxCount) * (histH - 4);
      if (b < t0 || a > t1) return null;
      return html`<rect x=${x(a)} y=${hy + histH - hh} width=${Math.max(1.5, x(b) - x(a) - 1)} height=${hh} class=${a + 30 * DAY < now ? 'hist past' : a < now + 30 * DAY ? 'hist soon' : 'hist'}><title>${m.month}: ${num(m.count)} device certificate${m.count === 1 ? '' : 's'} expire</title></rect>`;
    })}
    <line x1=${x(now)} x2=${x(now)} y1=${top - 4} y2=${h - 14} class="now" />
    <text x=${x(now)} y=${h - 3} class="now-label" text-anchor="middle">now</text>
  </svg>`;
}

/** The certificates tab. */
export function CertificatesView() {
  const res = useApi('/api/certificates');
  const [range, setRange] = useState('all');
  const v = res.data;
  return html`<section class="certificates">
    <div class="view-head"><h1>Certificates</h1>
      <div class="toggle" role="group" aria-label="Time range">
        <button type="button" class=${range === 'all' ? 'active' : ''} onClick=${() => setRange('all')}>whole validity</button>
        <button type="button" class=${range === 'soon' ? 'active' : ''} onClick=${() => setRange('soon')}>next 2 years</button>
      </div></div>
    <${ErrorBox} error=${res.error} title="Certificates" />
    ${!v ? (res.error ? null : html`<${Loading} what="the certificates" />`) : html`
      <${Timeline} view=${v} range=${range} />
      <p class="muted">Device certificates: ${num(v.devices.count)}${v.devices.earliest ? html`; the first to expire is <b>${v.devices.earliest.deviceId}</b> on <span title=${full(v.devices.earliest.notAfter)}>${date(v.devices.earliest.notAfter)}</span>` : ''}${v.devices.latest ? html`, the last ${v.devices.latest.deviceId} on ${date(v.devices.latest.notAfter)}` : ''}.</p>
      <table class="grid compact"><thead><tr><th>Name</th><th>Kind</th><th>Subject</th><th>Issuer</th><th>Valid from</th><th>Valid until</th><th>SHA-256</th></tr></thead>
        <tbody>${v.roots.map((r) => html`<tr><td><b>${r.name}</b></td><td>${(KIND[r.kind] ?? [r.kind])[0]}</td><td>${r.subject}</td><td>${r.issuer}</td>
          <td title=${full(r.notBefore)}>${date(r.notBefore)}</td><td title=${full(r.notAfter)}>${date(r.notAfter)}</td>
          <td><code title=${fpFull(r.sha256)}>${fp(r.sha256)}</code></td></tr>`)}</tbody></table>`}
  </section>`;
}
