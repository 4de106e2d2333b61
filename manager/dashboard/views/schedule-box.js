/**
 * The read-only "Schedule" box of the Rotation view: when the scheduler of
 * `trustroll serve` checks next, its maintenance windows, when the root
 * rotation and the next renewal fall due, and its last decisions (GET
 * /api/schedule). Reloaded when a rotation changes and every minute.
 */
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { useApi } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useNow, useThrottled } from '../lib/hooks.js';
import { full, num, time } from '../lib/format.js';
import { ErrorBox } from '../ui/common.js';

/** A due date in words: "in 170 d (2027-06-01 …)" or "now". */
function due(iso, now) {
  if (!iso) return '—';
  const days = Math.floor((new Date(iso).getTime() - now) / 86_400_000);
  return html`<span title=${full(iso)}>${days <= 0 ? html`<b class="warn">due now</b>` : `in ${num(days)} d`}</span>`;
}

function Decision({ d, now }) {
  const tone = d.outcome === 'start' ? 'ok' : d.outcome === 'refused' ? 'bad' : 'muted';
  return html`<li><span class="muted" title=${full(d.at)}>${time(d.at, now)}</span>${' '}
    <b class=${tone}>${d.what === 'rotate' ? 'root rotation' : 'renewal'} ${d.outcome === 'start' ? 'started' : d.outcome === 'refused' ? `refused (${d.code})` : `skipped (${d.code})`}</b>${d.rotationId ? html` <code>${d.rotationId}</code>` : null}: ${d.reason}</li>`;
}

/** The box; renders nothing while the service answers that it runs no scheduler. */
export function ScheduleBox() {
  const res = useApi('/api/schedule');
  const reload = useThrottled(res.reload, 2000);
  useLive('rotation', reload);
  useLive('reconnect', reload);
  const now = useNow(60_000);
  useEffect(() => {
    const t = setInterval(reload, 60_000);
    return () => clearInterval(t);
  }, []);
  const v = res.data;
  if (res.error) return res.error.code === 'E_NOT_FOUND' ? null : html`<${ErrorBox} error=${res.error} title="Schedule" />`;
  if (!v) return null;
  if (!v.enabled) {
    return html`<div class="schedule"><h3>Schedule</h3><p class="muted">No scheduled rotation or renewal: the service runs without <code>--rotate-before</code> and <code>--renew-before</code>.</p></div>`;
  }
  const c = v.config;
  return html`<div class="schedule"><h3>Schedule</h3>
    <dl class="facts">
      <dt>Checks</dt><dd><code>${c.checkCron}</code>${v.nextCheck ? html` · next <span title=${full(v.nextCheck)}>${time(v.nextCheck, now)}</span>` : ''}${v.lastCheck ? html` · last <span title=${full(v.lastCheck)}>${time(v.lastCheck, now)}</span>` : ''}</dd>
      <dt>Windows</dt><dd>${c.windows.length ? `${c.windows.join('; ')} (${c.timeZone === 'UTC' ? 'UTC' : 'manager local time'})` : 'none: any time'}${c.windows.length ? html` · ${v.window.open ? html`<b class="ok">open now</b>` : html`next opens <span title=${full(v.window.nextStart)}>${time(v.window.nextStart, now)}</span>`}` : ''}</dd>
      <dt>Root rotation</dt><dd>${c.rotateBefore ? html`${due(v.rotation.dueAt, now)} · the root expires <span title=${full(v.rotation.rootNotAfter)}>${v.rotation.rootNotAfter.slice(0, 10)}</span>, rotated ${c.rotateBefore} before (${c.rotateSchedule})` : 'not scheduled'}</dd>
      <dt>Renewal</dt><dd>${c.renewBefore ? html`${due(v.renewal.dueAt, now)} · certificates renewed ${c.renewBefore} before they expire${v.renewal.dueNow ? html` · <b class="warn">${num(v.renewal.dueNow)} due now</b>` : ''}` : 'not scheduled'}</dd>
      ${v.open ? html`<dt>Waiting for</dt><dd><code>${v.open.id}</code> (${v.open.schedule}, ${v.open.status})</dd>` : null}
    </dl>
    ${v.decisions.length ? html`<h4>Last decisions</h4><ul class="sentences">${v.decisions.slice(0, 5).map((d) => html`<${Decision} key=${`${d.at}/${d.what}/${d.code}`} d=${d} now=${now} />`)}</ul>` : html`<p class="muted">No decision yet.</p>`}
  </div>`;
}
