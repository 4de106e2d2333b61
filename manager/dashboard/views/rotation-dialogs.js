/**
 * The two rotation actions that need a second look: Start (shows the
 * schedule that will run, step by step, and lets the operator pick one) and
 * Abort (says what it will do: roll every device back while no server has
 * its new certificate yet, else stop where it is).
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { useApi } from '../lib/api.js';
import { num } from '../lib/format.js';
import { ErrorBox, Loading } from '../ui/common.js';
import { Dialog } from '../ui/dialog.js';

const HINTS = {
  'six-step': 'Six requests per printer–client pair. No handshake fails at any moment: each device adds the new root next to the old one before anyone presents a certificate signed by it.',
  batched: 'Three requests (B1 to clients, B2 to printers, B3 to clients): fewer round trips on a large fleet. Until a printer has its B2, each client connection to it first fails with the new certificate and succeeds with the old one.',
  'server-root': 'The root that signs the printers\' certificates: clients trust the new one first, then each printer presents its new certificate, then clients drop the old root. The clients\' certificates do not change.',
  'client-root': 'The root that signs the clients\' certificates: printers trust the new one first, then each client presents its new certificate, then printers drop the old root. The printers\' certificates do not change.',
};

/** The steps of a schedule as a table: who, does what, waits for what. */
export function ScheduleTable({ s }) {
  return html`<table class="grid compact"><thead><tr><th>Step</th><th>Role</th><th>Does</th><th>Starts after</th></tr></thead>
    <tbody>${s.steps.map((st) => html`<tr><td><b>${st.id}</b></td><td>${st.role === 'server' ? 'servers (printers)' : 'clients'}</td>
      <td>${st.doc}</td><td>${st.after.length ? st.after.join(', ') : '—'}</td></tr>`)}</tbody></table>
    <p class="muted">Order on each device — servers: ${s.sequence.server.join(' → ') || '—'}; clients: ${s.sequence.client.join(' → ') || '—'}.</p>`;
}

/** Start confirmation: pick the schedule and the offline policy, read what will run, confirm. */
export function StartDialog({ onClose, onStart, busy, error }) {
  const res = useApi('/api/schedules');
  const schedules = res.data?.schedules ?? [];
  const [name, setName] = useState(null);
  const [exclude, setExclude] = useState(false);
  const [minutes, setMinutes] = useState(60);
  const [algorithm, setAlgorithm] = useState('');
  const [subject, setSubject] = useState('');
  const [oldWithNew, setOldWithNew] = useState(false);
  const newRoot = { ...(algorithm ? { algorithm } : {}), ...(subject.trim() ? { subject: subject.trim() } : {}), ...(oldWithNew ? { distributeOldWithNew: true } : {}) };
  const separate = res.data?.separateRoots === true;
  const chosen = schedules.find((s) => s.name === name) ?? schedules.find((s) => s.name === 'six-step') ?? schedules[0];
  return html`<${Dialog} title="Start a root rotation" wide onClose=${onClose}
    actions=${html`<button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class="primary" disabled=${busy || !chosen || (exclude && !(minutes >= 1))} onClick=${() => onStart(chosen.name, exclude ? Math.round(minutes * 60) : null, newRoot)}>Start ${chosen ? chosen.name : ''} rotation</button>`}>
    <p>The manager makes a new root key, certifies it with the current root, and sends each device its steps
      in the order below, each only after every step it waits for is acknowledged. You can pause or abort at any time;
      every intermediate state still authenticates.</p>
    <${ErrorBox} error=${res.error} title="Schedules" />
    ${!res.data ? (res.error ? null : html`<${Loading} what="the schedules" />`) : html`
      <fieldset class="choices"><legend>${separate ? 'Root to rotate' : 'Schedule'}</legend>
        ${separate ? html`<p class="hint">This fleet keeps separate roots for printers (server) and clients: a rotation changes one of them.</p>` : null}
        ${schedules.map((s) => html`<label class="choice"><input type="radio" name="schedule" value=${s.name}
            checked=${chosen && chosen.name === s.name} onChange=${() => setName(s.name)} />
          <b>${s.root ? `${s.root} root` : s.name}</b> <span class="muted">(${s.root ? `${s.name}, ` : ''}${s.steps.length} steps)</span>
          ${HINTS[s.name] ? html`<div class="hint">${HINTS[s.name]}</div>` : null}</label>`)}
      </fieldset>
      <fieldset class="choices"><legend>Devices that are offline</legend>
        <label class="choice"><input type="radio" name="offline" checked=${!exclude} onChange=${() => setExclude(false)} />
          <b>Wait</b> <div class="hint">The rotation holds and names the device it waits for.</div></label>
        <label class="choice"><input type="radio" name="offline" checked=${exclude} onChange=${() => setExclude(true)} />
          <b>Exclude after</b> <input type="number" min="1" step="1" value=${minutes} aria-label="minutes offline before a device is excluded"
            onInput=${(e) => setMinutes(Number(e.currentTarget.value))} disabled=${!exclude} /> minutes offline
          <div class="hint">Its peers stop waiting for it; it is reported, and brought forward when it comes back.</div></label>
      </fieldset>
      <fieldset class="choices"><legend>New root</legend>
        <label class="choice"><b>Algorithm</b> <select name="algorithm" aria-label="algorithm of the new root" value=${algorithm} onChange=${(e) => setAlgorithm(e.currentTarget.value)}>
            <option value="">keep the current root's</option>
            ${['RSA-2048', 'RSA-3072', 'P-256', 'P-384'].map((a) => html`<option value=${a}>${a}</option>`)}
          </select>
          <div class="hint">An RSA fleet stays RSA unless you choose otherwise; a root some device declared it cannot verify is refused, naming the device.</div></label>
        <label class="choice"><b>Subject</b> <input type="text" name="subject" aria-label="subject of the new root" placeholder="same as the current root" value=${subject}
            onInput=${(e) => setSubject(e.currentTarget.value)} size="40" />
          <div class="hint">A distinguished name such as CN=Printer Fleet Root 2027,O=Example; empty keeps the current one, byte for byte.</div></label>
        <label class="choice"><input type="checkbox" name="oldWithNew" checked=${oldWithNew} onChange=${(e) => setOldWithNew(e.currentTarget.checked)} />
          <b>Distribute OldWithNew</b>
          <div class="hint">Devices keep the old key certified by the new one when they drop the old root, so a device left behind (excluded, offline) still authenticates until it catches up. Leave off if the old key may be compromised.</div></label>
      </fieldset>
      ${chosen ? html`<h3>What ${chosen.name} will run</h3><${ScheduleTable} s=${chosen} />` : null}`}
    <${ErrorBox} error=${error} title="Not started" />
  <//>`;
}

/** Abort confirmation: roll back while possible, else stop where it is; says which before the operator confirms. */
export function AbortDialog({ rotation, onClose, onAbort, busy, error }) {
  const back = rotation.rollback && rotation.rollback.possible && rotation.status !== 'rolling-back';
  return html`<${Dialog} title=${`Abort rotation ${rotation.id}?`} onClose=${onClose}
    actions=${html`<button type="button" onClick=${onClose}>Keep it</button>
      <button type="button" class="danger" disabled=${busy} onClick=${onAbort}>${back ? 'Roll back' : 'Stop here'}</button>`}>
    ${back ? html`<p><b>Roll back.</b> No printer has its new certificate yet, so every device returns to exactly its
      trust store and certificate from before the rotation, through ordered, acknowledged steps (clients drop the new
      certificate before printers drop the new root). No connection breaks on the way.</p>
      <p>${num(rotation.acked)} of ${num(rotation.total)} device-steps were acknowledged. Once rolled back, the rotation is closed and a new one can start.</p>`
    : html`<p><b>Stop sending.</b> ${rotation.status === 'rolling-back' ? 'The rollback stops where it is.' : html`A rollback is no longer possible: ${rotation.rollback && rotation.rollback.reason ? rotation.rollback.reason : 'a printer may already present its new certificate'}.`}
      Every device stays where it is — every intermediate state authenticates, so no connection breaks.</p>
      <p>${num(rotation.acked)} of ${num(rotation.total)} device-steps are acknowledged. The rotation stays open: <b>resume it later</b> to finish from where it stopped. Until it completes, no other rotation can start.</p>`}
    <${ErrorBox} error=${error} title="Not aborted" />
  <//>`;
}
