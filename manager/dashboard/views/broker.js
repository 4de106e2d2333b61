/**
 * Broker: the latest $SYS sample (clients, message rates, drops, queue,
 * uptime, version), a chart of msg in/out per second and connected clients
 * fed by GET /api/broker's history plus live `broker` events, and the
 * manager's own MQTT session counters. When the broker stopped publishing
 * $SYS the note saying what to configure replaces the numbers.
 */
import { html } from 'htm/preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { useApi } from '../lib/api.js';
import { useLive } from '../lib/live.js';
import { useNow } from '../lib/hooks.js';
import { duration, full, num, time } from '../lib/format.js';
import { Dot, ErrorBox, Facts, Loading } from '../ui/common.js';
import { Chart, COLOURS, timeAxis } from '../ui/chart.js';

const KEEP = 720;

function Stat({ label, value, hint }) {
  return html`<div class="stat" title=${hint ?? ''}><div class="n">${value}</div><div class="l">${label}</div></div>`;
}

function Numbers({ s }) {
  return html`<div class="stats">
    <${Stat} label="clients connected" value=${num(s.clientsConnected)} />
    <${Stat} label="messages in / s" value=${num(s.msgInPerS, 1)} />
    <${Stat} label="messages out / s" value=${num(s.msgOutPerS, 1)} />
    <${Stat} label="dropped" value=${num(s.dropped)} hint="messages the broker dropped (queues full or clients gone)" />
    <${Stat} label="stored / queued" value=${num(s.stored)} hint="retained and queued messages held by the broker" />
    <${Stat} label="uptime" value=${s.uptimeS === null ? '—' : duration(s.uptimeS * 1000)} />
    <${Stat} label="version" value=${s.version ?? s.source} />
  </div>`;
}

const OPTS = {
  series: [{},
    { label: 'in / s', stroke: COLOURS[0], width: 2, points: { show: false }, scale: 'rate', value: (u, v) => (v === null ? '—' : num(v, 1)) },
    { label: 'out / s', stroke: COLOURS[1], width: 2, points: { show: false }, scale: 'rate', value: (u, v) => (v === null ? '—' : num(v, 1)) },
    { label: 'clients', stroke: COLOURS[2], width: 2, points: { show: false }, dash: [6, 4], scale: 'clients', value: (u, v) => (v === null ? '—' : num(v)) }],
  scales: { x: { time: true }, rate: { auto: true }, clients: { auto: true } },
  axes: [timeAxis(), { scale: 'rate', label: 'messages / s', size: 60 }, { scale: 'clients', side: 1, label: 'clients', grid: { show: false }, size: 60 }],
};

/** The broker tab. */
export function BrokerView() {
  const res = useApi('/api/broker');
  const [samples, setSamples] = useState([]);
  const [stale, setStale] = useState(null);
  useEffect(() => { if (res.data) { setSamples(res.data.history.slice(-KEEP)); setStale(null); } }, [res.data]);
  useLive('broker', (e) => {
    setStale(e.stale);
    if (e.sample) setSamples((s) => (s.length && s[s.length - 1].at === e.sample.at ? s : [...s.slice(-(KEEP - 1)), e.sample]));
  });
  useLive('reconnect', res.reload);
  // Session counters and `connected` are not in the live events: refresh them now and then.
  useEffect(() => { const t = setInterval(res.reload, 15_000); return () => clearInterval(t); }, []);
  const now = useNow(10_000);
  const data = useMemo(() => [
    samples.map((s) => new Date(s.at).getTime() / 1000),
    samples.map((s) => s.msgInPerS), samples.map((s) => s.msgOutPerS), samples.map((s) => s.clientsConnected),
  ], [samples]);
  const b = res.data;
  if (!b) return html`<section><h1>Broker</h1><${ErrorBox} error=${res.error} title="Broker" />${res.error ? null : html`<${Loading} what="the broker state" />`}</section>`;
  const latest = samples.length ? samples[samples.length - 1] : b.latest;
  const isStale = stale ?? b.stale;
  const t = b.transport;
  return html`<section class="broker">
    <div class="view-head"><h1>Broker</h1>
      <span class="muted"><${Dot} online=${b.connected} /> ${b.url} — manager ${b.connected ? 'connected' : 'not connected'}</span></div>
    <${ErrorBox} error=${res.error} />
    ${isStale ? html`<div class="notice" role="status"><b>No broker statistics.</b> ${b.note || 'The broker has not published $SYS statistics for a while.'}
        ${latest ? html`<div class="muted">Last sample at ${time(latest.at, now)} (${duration(now - new Date(latest.at).getTime())} ago).</div>` : null}</div>`
      : latest ? html`<${Numbers} s=${latest} /><p class="muted small">Sample at <span title=${full(latest.at)}>${time(latest.at, now)}</span> from ${latest.source}.</p>`
      : html`<p class="muted">No sample yet.</p>`}
    ${samples.length > 1 ? html`<h3>Traffic</h3><${Chart} opts=${OPTS} data=${data} height=${240} label="Broker messages per second and connected clients" />` : null}
    <h3>The manager's MQTT session</h3>
    <${Facts} rows=${[
      ['Session', b.connected ? 'connected' : 'not connected'],
      ['Connects / disconnects', `${num(t.connects)} / ${num(t.disconnects)}`],
      ['Commands published', `${num(t.commandsPublished)} (${num(t.republished)} republished)`],
      ['Acknowledgements', `${num(t.acksReceived)} received, ${num(t.acksDropped)} dropped`],
      ['State messages', num(t.statesReceived)],
    ]} />
  </section>`;
}
