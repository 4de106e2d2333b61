/**
 * The device panel: everything the manager knows of one device
 * (GET /api/devices/:id): presence, roots it trusts, its certificate, its
 * steps in the rotation and what its current step waits for, and the
 * admin's "Exclude from rotation" action.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, useApi } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useNow, useThrottled } from '../lib/hooks.js';
import { date, expiry, fpFull, full, num, time } from '../lib/format.js';
import { Badge, ErrorBox, Facts, Loading, Presence } from '../ui/common.js';
import { Dialog } from '../ui/dialog.js';
import { BlockerPhrase } from './waits.js';
import { Trusts } from './trusts.js';

/** The exclusion dialog: a reason is required, and the consequence is spelled out. */
function ExcludeDialog({ device, onClose, onDone }) {
  const [reason, setReason] = useState('');
  const [sure, setSure] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await api(`/api/devices/${encodeURIComponent(device.id)}/exclude`, { method: 'POST', body: { reason: reason.trim() } });
      onDone();
    } catch (e) { setError(e); setBusy(false); }
  };
  return html`<${Dialog} title=${`Exclude ${device.id} from the rotation`} onClose=${onClose}
    actions=${html`<button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class="danger" disabled=${busy || !sure || reason.trim() === ''} onClick=${submit}>Exclude ${device.id}</button>`}>
    <p>The rotation stops sending steps to <b>${device.id}</b> and its peers stop waiting for it.
      The device keeps the roots and certificate it has now. Once the rest of the fleet has dropped the old root,
      an excluded ${device.role === 'server' ? 'printer will be refused by clients' : 'client will be refused by printers'} until it is re-enrolled.</p>
    <label class="field block">Reason (kept in the audit log)
      <textarea name="reason" rows="3" required placeholder="e.g. decommissioned, sent for repair" value=${reason}
        onInput=${(e) => setReason(e.currentTarget.value)}></textarea></label>
    <label class="check"><input type="checkbox" name="sure" checked=${sure} onChange=${(e) => setSure(e.currentTarget.checked)} />
      I understand ${device.id} will not be rotated.</label>
    <${ErrorBox} error=${error} title="Not excluded" />
  <//>`;
}

function Steps({ steps }) {
  if (steps.length === 0) return html`<p class="muted">No step of a rotation for this device.</p>`;
  return html`<table class="grid compact"><thead><tr><th>Step</th><th>Status</th><th class="num">Seq</th><th class="num">Attempts</th><th>Sent</th><th>Acknowledged</th><th>Error</th></tr></thead>
    <tbody>${steps.map((s) => html`<tr>
      <td><b>${s.step}</b></td><td><${Badge} status=${s.status} /></td><td class="num">${s.seq ?? '—'}</td><td class="num">${s.attempts}</td>
      <td title=${full(s.sentAt)}>${time(s.sentAt)}</td><td title=${full(s.ackedAt)}>${time(s.ackedAt)}</td>
      <td>${s.error ? html`<code class="code bad">${s.error.code}</code> ${s.error.message}` : ''}</td></tr>`)}</tbody></table>`;
}

/** The side panel for one device. */
export function DevicePanel({ id, me, onClose, onChanged }) {
  const res = useApi(`/api/devices/${encodeURIComponent(id)}`);
  const reload = useThrottled(res.reload, 1500);
  useLive('fleet', (e) => { if (e.changed && e.changed.includes(id)) reload(); });
  useLive('reconnect', res.reload);
  const [excluding, setExcluding] = useState(false);
  const now = useNow();
  const detail = res.data;
  const d = detail?.device;
  const cur = detail?.steps.find((s) => s.step === d.step);
  return html`<aside class="panel" aria-label=${`Device ${id}`}>
    <div class="panel-head"><h2>${id}</h2><button type="button" class="close" onClick=${onClose} aria-label="Close">×</button></div>
    <${ErrorBox} error=${res.error} />
    ${!detail ? (res.error ? null : html`<${Loading} what=${id} />`) : html`
      <${Facts} rows=${[
        ['Role', d.role === 'server' ? 'server (printer, serves mTLS)' : 'client (connects to printers)'],
        ['Reached', d.via ? `through relay ${d.via} (over their mutual TLS)` : d.relaysFor?.length ? `directly; relays for ${d.relaysFor.join(', ')}` : 'directly (its own broker session)'],
        ['Presence', html`<${Presence} online=${d.online} since=${d.since} now=${now} />`],
        ['Last state', html`<span title=${full(d.lastSeen)}>${time(d.lastSeen, now)}</span>`],
        ['Trusts', html`<${Trusts} trusts=${d.trusts} />`],
        ['Rotation', d.rotationId ?? '—'],
        ['Step', d.step ? html`${d.step} <${Badge} status=${d.stepStatus} /> ${d.attempts ? `(${d.attempts} attempt${d.attempts === 1 ? '' : 's'})` : ''}` : '—'],
        ['Last ack', html`<span title=${full(d.lastAckAt)}>${time(d.lastAckAt, now)}</span>`],
        d.lastError && ['Last error', html`<code class="code bad">${d.lastError.code}</code> ${d.lastError.message}`],
        d.tls && ['Handshakes', `${num(d.tls.ok)} ok, ${num(d.tls.failed)} failed${d.tls.unreachable != null ? `, ${num(d.tls.unreachable)} peer unreachable` : ''}, ${num(d.tls.fallbacks)} with the old certificate (of ${num(d.tls.attempts)})`],
        ['Agent applies', d.accepts == null ? html`<span class="muted">not reported yet</span>`
          : d.accepts.length ? d.accepts.join(', ') : html`<span class="warn">no optional step fields: an agent from before OldWithNew; upgrade it before distributing OldWithNew</span>`],
        d.excluded && ['Excluded', html`<${Badge} status="excluded">excluded from the rotation<//>`],
      ]} />
      ${d.step && detail.waitingFor.length > 0 ? html`<h3>Waiting</h3>
        <p class="wait"><b>${d.step}</b> of ${id} waits for ${detail.waitingFor.map((b, i) => html`${i ? '; ' : ''}<${BlockerPhrase} b=${b} now=${now} />`)}.</p>`
        : d.step && cur && cur.status === 'pending' ? html`<h3>Waiting</h3><p class="muted">${d.step} waits for nothing; it is about to be sent.</p>` : null}
      <h3>Certificate</h3>
      <${Facts} rows=${[
        ['Subject', detail.certificate.subject], ['Issuer', detail.certificate.issuer],
        ['Valid', html`${date(detail.certificate.notBefore)} – ${date(detail.certificate.notAfter)} <span class=${`muted ${expiry(d.certDaysLeft).tone}`}>${expiry(d.certDaysLeft).text}</span>`],
        ['SHA-256', html`<code class="fp">${fpFull(detail.certificate.sha256)}</code>`],
      ]} />
      <h3>Steps</h3>
      <${Steps} steps=${detail.steps} />
      ${me && me.role === 'admin' && !d.excluded && detail.steps.some((s) => s.status !== 'acked' && s.status !== 'excluded') ? html`<div class="panel-actions">
        <button type="button" class="danger" onClick=${() => setExcluding(true)}>Exclude from rotation…</button></div>` : null}
      ${excluding ? html`<${ExcludeDialog} device=${d} onClose=${() => setExcluding(false)}
        onDone=${() => { setExcluding(false); res.reload(); onChanged(); }} />` : null}`}
  </aside>`;
}
