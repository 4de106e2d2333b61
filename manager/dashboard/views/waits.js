/**
 * "Who is holding it up", in sentences an operator reads at a glance:
 * "P4 of printer-17 waits for P2 of console-3, offline since 10:42".
 * Offline devices are highlighted; they are usually the answer.
 */
import { html } from 'htm/preact';
import { href } from '../lib/hooks.js';
import { time, full } from '../lib/format.js';

/** Why a blocking device-step has not been acknowledged, in words. */
export function blockerState(b, now) {
  if (b.status === 'excluded') return 'excluded';
  if (b.online === false) return `offline since ${b.since ? time(b.since, now) : 'unknown'}`;
  if (b.online === null) return 'never seen by the manager';
  if (b.status === 'failed') return `failed${b.lastError ? ` (${b.lastError.code})` : ''} after ${b.attempts} attempt${b.attempts === 1 ? '' : 's'}`;
  if (b.status === 'sent') return `sent, not yet acknowledged${b.attempts > 1 ? ` (attempt ${b.attempts})` : ''}`;
  if (b.status === 'pending') return 'not yet sent (waits itself)';
  return b.status;
}

function DeviceLink({ id }) {
  return html`<a class="device" href=${href('fleet', null, { device: id })}>${id}</a>`;
}

/** "P2 of console-3, offline since 10:42", the offline part highlighted. */
export function BlockerPhrase({ b, now }) {
  const off = b.online === false || b.online === null;
  return html`<span class=${off ? 'blocker offline' : b.status === 'failed' ? 'blocker failed' : 'blocker'}
      title=${b.lastError ? `${b.lastError.code}: ${b.lastError.message}` : full(b.since)}>
    <b>${b.step}</b> of <${DeviceLink} id=${b.deviceId} />, <span class="why">${blockerState(b, now)}</span></span>`;
}

/** One sentence: "<step> of <device> waits for <blockers>[ and N more]". */
export function WaitSentence({ w, now }) {
  const parts = [];
  w.waitingFor.forEach((b, i) => {
    if (i > 0) parts.push(i === w.waitingFor.length - 1 && !w.more ? ' and ' : '; ');
    parts.push(html`<${BlockerPhrase} b=${b} now=${now} />`);
  });
  return html`<li class="wait"><b>${w.step}</b> of <${DeviceLink} id=${w.deviceId} /> <span class="muted">(${w.role})</span> waits for ${parts}${w.more ? html` and ${w.more} more` : null}${w.waitingFor.length === 0 && !w.more ? ' nothing; it is about to be sent' : null}.</li>`;
}

/** "P2 of console-3 holds up 17 device-steps: offline since 10:42". */
export function BlockerSentence({ b, now }) {
  return html`<li class="wait"><${BlockerPhrase} b=${b} now=${now} /> — holds up <b>${b.blocks}</b> device-step${b.blocks === 1 ? '' : 's'}.</li>`;
}
