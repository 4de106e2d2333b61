/**
 * Audit: the manager's append-only log (GET /api/audit), a page at a time
 * from the oldest, optionally for one rotation. The last page refreshes by
 * itself when live `audit` events arrive.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { query, useApi } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { href, navigate, useDebounced, useThrottled } from '../lib/hooks.js';
import { full, timeSec } from '../lib/format.js';
import { ErrorBox, Loading } from '../ui/common.js';

const LIMIT = 100;

function Detail({ d }) {
  if (!d) return '';
  const text = JSON.stringify(d);
  return html`<code class="detail" title=${JSON.stringify(d, null, 2)}>${text.length > 120 ? `${text.slice(0, 120)}…` : text}</code>`;
}

/** The audit tab; `?after=` and `?rotation=` are in the location hash. */
export function AuditView({ route }) {
  const after = route.params.after ?? '';
  const rotation = route.params.rotation ?? '';
  const [typed, setTyped] = useState(rotation);
  const debounced = useDebounced(typed, 400);
  useEffect(() => { if (debounced !== rotation) navigate(href('audit', null, { rotation: debounced }), true); }, [debounced]);
  const res = useApi(`/api/audit${query({ after, limit: LIMIT, rotation })}`);
  const [fresh, setFresh] = useState(0);
  const reload = useThrottled(() => { setFresh(0); res.reload(); }, 2000);
  useLive('audit', (e) => {
    if (rotation && e.entry && e.entry.rotationId !== rotation) return;
    if (res.data && res.data.next === null) reload(); else setFresh((n) => n + 1);
  });
  useLive('reconnect', res.reload);
  const page = res.data;
  const go = (a) => navigate(href('audit', null, { rotation, after: a }));
  return html`<section class="audit">
    <div class="view-head"><h1>Audit log</h1>
      <label class="field">Rotation <input type="search" name="rotation" placeholder="rotation id" value=${typed} onInput=${(e) => setTyped(e.currentTarget.value.trim())} /></label></div>
    <${ErrorBox} error=${res.error} title="Audit" />
    ${!page ? (res.error ? null : html`<${Loading} what="the audit log" />`) : html`
      <div class="pager">
        <button type="button" disabled=${!after} onClick=${() => go('')}>« Oldest</button>
        <button type="button" disabled=${!after} onClick=${() => history.back()}>‹ Back</button>
        <span class="range">${page.entries.length ? `#${page.entries[0].seq} – #${page.entries[page.entries.length - 1].seq}` : 'no entries'}</span>
        <button type="button" disabled=${page.next === null} onClick=${() => go(page.next)}>Newer ›</button>
        ${fresh ? html`<span class="muted">${fresh} newer entr${fresh === 1 ? 'y' : 'ies'} since this page loaded</span>` : null}
      </div>
      <div class="table-wrap"><table class="grid compact audit-table">
        <thead><tr><th class="num">#</th><th>Time</th><th>Actor</th><th>Action</th><th>Rotation</th><th>Device</th><th>Step</th><th>Code</th><th>Detail</th></tr></thead>
        <tbody>${page.entries.map((e) => html`<tr key=${e.seq}>
          <td class="num" title=${`hash ${e.hash}`}>${e.seq}</td><td title=${full(e.at)}>${timeSec(e.at)}</td><td>${e.actor}</td><td><b>${e.action}</b></td>
          <td>${e.rotationId ? html`<a href=${href('rotation', e.rotationId)}><code>${e.rotationId}</code></a>` : ''}</td>
          <td>${e.deviceId ? html`<a href=${href('fleet', null, { device: e.deviceId })}>${e.deviceId}</a>` : ''}</td>
          <td>${e.step ?? ''}</td><td>${e.code ? html`<code class="code bad">${e.code}</code>` : ''}</td><td><${Detail} d=${e.detail} /></td></tr>`)}</tbody>
      </table></div>`}
  </section>`;
}
