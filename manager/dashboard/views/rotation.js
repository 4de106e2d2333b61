/**
 * Rotation: the current (or a chosen past) rotation — header, per-step
 * progress, the acknowledgement timeline, who is holding it up — the admin
 * actions (start, pause, resume, abort), the scheduler's box and the list
 * of past rotations.
 * Live `rotation` events trigger (throttled) reloads.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, useApi } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { href, navigate, useNow, useThrottled } from '../lib/hooks.js';
import { duration, fp, fpFull, full, num, time } from '../lib/format.js';
import { Badge, ErrorBox, Loading, StackedBar } from '../ui/common.js';
import { AbortDialog, StartDialog } from './rotation-dialogs.js';
import { StepBars, TimelineChart } from './rotation-parts.js';
import { BlockerSentence, WaitSentence } from './waits.js';
import { ScheduleBox } from './schedule-box.js';

const OPEN = ['running', 'paused', 'failed', 'aborted', 'rolling-back'];

/** Admin buttons for the rotation's status; hidden for read-only operators. */
function Actions({ me, rotation, onDone }) {
  const [dialog, setDialog] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  if (!me) return null;
  if (me.role !== 'admin') return html`<p class="readonly muted">Read-only access: you can follow rotations; starting, pausing or aborting one needs an admin operator.</p>`;
  const run = async (path, body, after) => {
    setBusy(true);
    setError(null);
    try {
      const r = await api(path, { method: 'POST', body: body ?? {} });
      setDialog(null);
      onDone(r, after);
    } catch (e) { setError(e); }
    setBusy(false);
  };
  const st = rotation ? rotation.status : null;
  const act = (verb) => run(`/api/rotations/${encodeURIComponent(rotation.id)}/${verb}`, {});
  return html`<div class="actions-bar">
    ${!st || !OPEN.includes(st) ? html`<button type="button" class="primary" onClick=${() => { setError(null); setDialog('start'); }}>Start rotation…</button>` : null}
    ${st === 'running' || st === 'rolling-back' ? html`<button type="button" disabled=${busy} onClick=${() => act('pause')}>Pause</button>` : null}
    ${st === 'paused' || st === 'failed' || st === 'aborted' ? html`<button type="button" class="primary" disabled=${busy} onClick=${() => act('resume')}>Resume</button>` : null}
    ${st === 'running' || st === 'paused' || st === 'failed' || st === 'rolling-back' ? html`<button type="button" class="danger" onClick=${() => { setError(null); setDialog('abort'); }}>Abort…</button>` : null}
    ${dialog === null ? html`<${ErrorBox} error=${error} />` : null}
    ${dialog === 'start' ? html`<${StartDialog} busy=${busy} error=${error} onClose=${() => setDialog(null)}
        onStart=${(schedule, excludeOfflineAfterS, newRoot) => run('/api/rotations', { schedule, excludeOfflineAfterS, ...newRoot }, 'started')} />` : null}
    ${dialog === 'abort' ? html`<${AbortDialog} rotation=${rotation} busy=${busy} error=${error} onClose=${() => setDialog(null)}
        onAbort=${() => act('abort')} />` : null}
  </div>`;
}

function Header({ r, now }) {
  const done = r.acked + r.excluded;
  return html`<div class="rot-head">
    <div class="rot-title">
      <h2><code>${r.id}</code> <${Badge} status=${r.status} /></h2>
      <div class="muted">${r.phaseSchedule && r.phaseSchedule !== r.schedule ? html`${r.schedule} schedule, <b>rolling back</b> (${r.phaseSchedule})` : `${r.schedule} schedule`} · started <span title=${full(r.createdAt)}>${time(r.createdAt, now)}</span>${' · '}${r.status === 'running' ? `running for ${duration(now - new Date(r.createdAt).getTime())}` : html`updated <span title=${full(r.updatedAt)}>${time(r.updatedAt, now)}</span>`}</div>
    </div>
    <div class="rot-total">
      <div class="big"><b>${num(r.acked)}</b> / ${num(r.total)}</div>
      <div class="muted">device-steps acknowledged${r.excluded ? `, ${num(r.excluded)} excluded` : ''} · ${r.total ? Math.floor((100 * done) / r.total) : 0}%</div>
      <${StackedBar} counts=${{ acked: r.acked, excluded: r.excluded, pending: r.total - done }} total=${r.total} label="rotation" />
    </div>
    ${r.error ? html`<div class="error wide"><b>${r.status === 'failed' ? 'Stopped' : 'Note'}:</b> ${r.error}</div>` : null}
  </div>`;
}

/** "Who is holding it up": blockers first (most-blocking), then the waiting steps. */
function Holdups({ r, now }) {
  const [all, setAll] = useState(false);
  if (r.status === 'complete') return null;
  const waits = all ? r.waits : r.waits.slice(0, 25);
  const offline = r.blockers.filter((b) => b.online !== true).length;
  return html`<div class="holdups">
    <h3>Who is holding it up</h3>
    ${r.blockers.length === 0 && r.waits.length === 0 ? html`<p class="muted">Nobody: every pending step is in flight or about to be sent.</p>` : null}
    ${r.blockers.length ? html`<p class="muted">${num(r.blockers.length)} device-step${r.blockers.length === 1 ? '' : 's'} hold${r.blockers.length === 1 ? 's' : ''} others up${offline ? html`, <b class="bad">${offline} on devices that are offline or never seen</b>` : ''}.</p>
      <ul class="sentences">${r.blockers.slice(0, all ? 100 : 10).map((b) => html`<${BlockerSentence} key=${`${b.deviceId}/${b.step}`} b=${b} now=${now} />`)}</ul>` : null}
    ${r.waits.length ? html`<h4>Waiting steps <span class="muted">(${num(waits.length)} of ${num(r.waitsTotal)})</span></h4>
      <ul class="sentences">${waits.map((w) => html`<${WaitSentence} key=${`${w.deviceId}/${w.step}`} w=${w} now=${now} />`)}</ul>` : null}
    ${!all && (r.waits.length > 25 || r.blockers.length > 10) ? html`<button type="button" class="link" onClick=${() => setAll(true)}>Show more</button>` : null}
  </div>`;
}

function Material({ m, schedule }) {
  // A renewal makes no new root: its D and R1 columns hold the active root.
  if (schedule === 'renew') return html`<p class="muted material">New device certificates under the active root <code title=${fpFull(m.newRoot.sha256)}>${fp(m.newRoot.sha256)}</code> (${m.newRoot.subject}); no root changes.</p>`;
  return html`<p class="muted material">Distribution root D <code title=${fpFull(m.distribution.sha256)}>${fp(m.distribution.sha256)}</code>${' '}(${m.distribution.subject}, issued by ${m.distribution.issuer}) · new root R1 <code title=${fpFull(m.newRoot.sha256)}>${fp(m.newRoot.sha256)}</code></p>`;
}

function PastRotations({ list, current }) {
  if (!list || list.length === 0) return null;
  return html`<div class="past"><h3>Rotations</h3>
    <table class="grid compact"><thead><tr><th>Rotation</th><th>Schedule</th><th>Status</th><th>Started</th><th>Updated</th><th class="num">Acknowledged</th></tr></thead>
      <tbody>${list.map((r) => html`<tr class=${r.id === current ? 'selected' : ''}>
        <td><a href=${href('rotation', r.id)}><code>${r.id}</code></a></td><td>${r.schedule}</td><td><${Badge} status=${r.status} /></td>
        <td title=${full(r.createdAt)}>${time(r.createdAt)}</td><td title=${full(r.updatedAt)}>${time(r.updatedAt)}</td>
        <td class="num">${num(r.acked)}/${num(r.total)}${r.excluded ? ` (+${num(r.excluded)} excl.)` : ''}</td></tr>`)}</tbody></table></div>`;
}

/** The rotation tab. */
export function RotationView({ route, me }) {
  const id = route.arg;
  const res = useApi(id ? `/api/rotations/${encodeURIComponent(id)}` : '/api/rotations/current');
  const r = res.data;
  const none = !id && res.error && res.error.code === 'E_ROTATION_UNKNOWN';
  const tl = useApi(r ? `/api/rotations/${encodeURIComponent(r.id)}/timeline` : null);
  const list = useApi('/api/rotations');
  const reloadDetail = useThrottled(res.reload, 1000);
  const reloadTimeline = useThrottled(tl.reload, 2000);
  const reloadList = useThrottled(list.reload, 3000);
  useLive('rotation', (e) => {
    const rid = e.rotation && e.rotation.id;
    if (r && rid === r.id && e.rotation.status !== r.status) {
      // Started, paused, resumed, failed, complete: show it at once, everywhere.
      res.reload(); tl.reload(); list.reload();
      return;
    }
    if (!r || rid === r.id || !id) { reloadDetail(); reloadTimeline(); }
    reloadList();
  });
  useLive('reconnect', () => { res.reload(); tl.reload(); list.reload(); });
  const now = useNow(10_000);
  const onDone = (summary, what) => {
    if (what === 'started') navigate(href('rotation'));
    res.reload(); tl.reload(); list.reload();
  };
  const shown = none ? null : r;
  return html`<section class="rotation">
    <div class="view-head"><h1>Rotation${id ? html` <a class="small" href=${href('rotation')}>current ›</a>` : ''}</h1>
      <${Actions} me=${me} rotation=${shown} onDone=${onDone} /></div>
    ${none ? html`<p class="empty">No rotation is open.${me && me.role === 'admin' ? ' Start one to replace the fleet\'s root.' : ''}</p>`
      : html`<${ErrorBox} error=${res.error} title="Rotation" />`}
    ${!shown ? (res.error ? null : html`<${Loading} what="the rotation" />`) : html`
      <${Header} r=${shown} now=${now} />
      <${StepBars} steps=${shown.steps} />
      ${tl.data ? html`<${TimelineChart} timeline=${tl.data} />` : html`<${ErrorBox} error=${tl.error} title="Timeline" />`}
      <${Holdups} r=${shown} now=${now} />
      ${shown.material ? html`<${Material} m=${shown.material} schedule=${shown.schedule} />` : null}`}
    <${ScheduleBox} />
    <${ErrorBox} error=${list.error} title="Rotations" />
    <${PastRotations} list=${list.data && list.data.rotations} current=${shown && shown.id} />
  </section>`;
}
