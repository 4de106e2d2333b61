/**
 * Fleet: one page of devices at a time from GET /api/fleet (the server
 * filters, sorts and pages, so 10,000 devices cost the same as 100), the
 * fleet counts, filters in the location hash (bookmarkable), a debounced
 * search, and the device panel for the device named in `?device=`.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { query, useApi } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { href, navigate, useDebounced, useNow, useThrottled } from '../lib/hooks.js';
import { expiry, full, num, time, date } from '../lib/format.js';
import { Badge, ErrorBox, Loading, Pager, Presence } from '../ui/common.js';
import { DevicePanel } from './device-panel.js';
import { Trusts } from './trusts.js';

const FILTERS = ['q', 'role', 'presence', 'status', 'sort', 'offset', 'limit', 'device'];
const COLUMNS = [
  ['id', 'Device', 'id'], ['role', 'Role', 'role'], ['presence', 'Presence', 'since'], ['trusts', 'Trusts', null],
  ['cert', 'Certificate expires', 'certNotAfter'], ['step', 'Step', 'step'], ['attempts', 'Attempts', null],
  ['ack', 'Last ack', null], ['error', 'Last error', null],
];

function pick(params) {
  return Object.fromEntries(FILTERS.map((k) => [k, params[k] ?? '']));
}

/** The counts bar; each count filters the table when clicked. */
function Counts({ counts, set, params }) {
  const item = (label, n, patch, active) => html`<button type="button" class=${active ? 'count active' : 'count'}
      onClick=${() => set({ ...patch, offset: 0 })}><span class="n">${num(n)}</span><span class="l">${label}</span></button>`;
  return html`<div class="counts">
    ${item('devices', counts.devices, { role: '', presence: '' }, !params.role && !params.presence)}
    ${item('online', counts.online, { presence: 'online' }, params.presence === 'online')}
    ${item('offline', counts.offline, { presence: 'offline' }, params.presence === 'offline')}
    ${item('never seen', counts.unknown, { presence: 'unknown' }, params.presence === 'unknown')}
    ${item('servers', counts.servers, { role: 'server' }, params.role === 'server')}
    ${item('clients', counts.clients, { role: 'client' }, params.role === 'client')}
    ${item('excluded', counts.excluded, { status: 'excluded' }, params.status === 'excluded')}
  </div>`;
}

function Select({ label, value, options, onChange }) {
  return html`<label class="field">${label}
    <select value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${options.map(([v, t]) => html`<option value=${v}>${t}</option>`)}
    </select></label>`;
}

function Row({ d, now, selected, open }) {
  const exp = expiry(d.certDaysLeft);
  return html`<tr class=${`${selected ? 'selected' : ''} ${d.excluded ? 'excluded' : ''}`} onClick=${() => open(d.id)}>
    <td><a class="device" href=${href('fleet', null, { device: d.id })} onClick=${(e) => { e.preventDefault(); open(d.id); }}>${d.id}</a>
      ${d.excluded ? html` <${Badge} status="excluded" />` : null}</td>
    <td>${d.role}</td>
    <td><${Presence} online=${d.online} since=${d.since} now=${now} /></td>
    <td><${Trusts} trusts=${d.trusts} /></td>
    <td title=${full(d.certNotAfter)}>${date(d.certNotAfter)} <span class=${`muted ${exp.tone}`}>${exp.text}</span></td>
    <td title=${d.rotationId ? `rotation ${d.rotationId}` : ''}>${d.step ? html`${d.step} <${Badge} status=${d.stepStatus} />` : html`<span class="muted">—</span>`}</td>
    <td class="num">${d.attempts || ''}</td>
    <td title=${full(d.lastAckAt)}>${time(d.lastAckAt, now)}</td>
    <td>${d.lastError ? html`<code class="code bad" title=${d.lastError.message}>${d.lastError.code}</code>` : ''}</td>
  </tr>`;
}

/** The fleet tab. */
export function FleetView({ route, me }) {
  const params = pick(route.params);
  const set = (patch, replace = false) => navigate(href('fleet', null, { ...params, ...patch }), replace);
  const [typed, setTyped] = useState(params.q);
  const q = useDebounced(typed, 250);
  useEffect(() => { if (q !== params.q) set({ q, offset: 0 }, true); }, [q]);
  useEffect(() => { if (document.activeElement?.name !== 'q') setTyped(params.q); }, [params.q]);

  const offset = Math.max(0, Number(params.offset) || 0);
  const limit = Math.min(500, Math.max(1, Number(params.limit) || 100));
  const fleet = useApi(`/api/fleet${query({ offset, limit, q: params.q, role: params.role, presence: params.presence, status: params.status, sort: params.sort })}`);
  const [liveCounts, setLiveCounts] = useState(null);
  const reload = useThrottled(fleet.reload, 2000);
  useLive('fleet', (e) => { setLiveCounts(e.counts); if (e.changed && e.changed.length) reload(); });
  useLive('reconnect', fleet.reload);
  useEffect(() => setLiveCounts(null), [fleet.data]);
  const now = useNow();
  const page = fleet.data;
  const counts = liveCounts ?? page?.counts;
  const sort = params.sort || 'id';

  return html`<section class="fleet">
    <div class="view-head">
      <h1>Fleet</h1>
      ${counts ? html`<${Counts} counts=${counts} set=${set} params=${params} />` : null}
    </div>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <label class="field grow">Search
        <input type="search" name="q" placeholder="device id contains…" value=${typed} autocomplete="off"
          onInput=${(e) => setTyped(e.currentTarget.value)} /></label>
      <${Select} label="Role" value=${params.role} onChange=${(v) => set({ role: v, offset: 0 })}
        options=${[['', 'any'], ['server', 'servers (printers)'], ['client', 'clients']]} />
      <${Select} label="Presence" value=${params.presence} onChange=${(v) => set({ presence: v, offset: 0 })}
        options=${[['', 'any'], ['online', 'online'], ['offline', 'offline'], ['unknown', 'never seen']]} />
      <${Select} label="Step status" value=${params.status} onChange=${(v) => set({ status: v, offset: 0 })}
        options=${[['', 'any'], ...['pending', 'sent', 'acked', 'failed', 'excluded', 'done'].map((s) => [s, s])]} />
      <${Select} label="Rows" value=${String(limit)} onChange=${(v) => set({ limit: v, offset: 0 })}
        options=${[['50', '50'], ['100', '100'], ['200', '200'], ['500', '500']]} />
      ${fleet.loading ? html`<span class="spinner" aria-label="loading"></span>` : null}
    </form>
    <${ErrorBox} error=${fleet.error} title="Fleet" />
    ${!page ? (fleet.error ? null : html`<${Loading} what="the fleet" />`) : html`
      <div class="table-wrap">
        <table class="grid fleet-table">
          <thead><tr>${COLUMNS.map(([id, label, key]) => html`<th class=${id === 'attempts' ? 'num' : ''}>${key
            ? html`<button type="button" class=${sort === key ? 'sort active' : 'sort'} title=${`Sort by ${label.toLowerCase()}`}
                onClick=${() => set({ sort: key === 'id' ? '' : key, offset: 0 })}>${label}${sort === key ? ' ▲' : ''}</button>`
            : label}</th>`)}</tr></thead>
          <tbody>${page.devices.map((d) => html`<${Row} key=${d.id} d=${d} now=${now} selected=${d.id === params.device} open=${(id) => set({ device: id })} />`)}</tbody>
        </table>
        ${page.devices.length === 0 ? html`<p class="empty">No device matches${params.q ? html` “${params.q}”` : ''}${params.role || params.presence || params.status ? ' with these filters' : ''}.</p>` : null}
      </div>
      <${Pager} offset=${page.offset} limit=${page.limit} total=${page.total} onChange=${(o) => set({ offset: o })} />`}
    ${params.device ? html`<${DevicePanel} id=${params.device} me=${me} onClose=${() => set({ device: '' })} onChanged=${fleet.reload} />` : null}
  </section>`;
}
