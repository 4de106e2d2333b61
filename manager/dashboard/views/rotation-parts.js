/**
 * Pieces of the rotation tab: per-step progress bars and the uPlot
 * timeline of acknowledgements (one series per step, cumulative or per
 * time bucket).
 */
import { html } from 'htm/preact';
import { useMemo, useState } from 'preact/hooks';
import { num, duration } from '../lib/format.js';
import { StackedBar } from '../ui/common.js';
import { Chart, COLOURS, timeAxis } from '../ui/chart.js';
import uPlot from 'uplot';

const stepped = uPlot.paths.stepped({ align: -1 });

/** One row per step: bar, "acked/total", and what the rest is doing. */
export function StepBars({ steps }) {
  return html`<div class="steps">${steps.map((s) => {
    const rest = [['sent', s.sent], ['failed', s.failed], ['excluded', s.excluded], ['pending', s.pending]].filter(([, n]) => n > 0);
    return html`<div class="step-row">
      <div class="step-name"><b>${s.step}</b> <span class="muted">${s.role === 'server' ? 'servers' : 'clients'}</span></div>
      <div class="step-doc" title=${s.doc}>${s.doc}</div>
      <${StackedBar} counts=${s} total=${s.total} label=${s.step} />
      <div class="step-count"><b>${num(s.acked)}</b>/${num(s.total)}${rest.length ? html` <span class="muted">· ${rest.map(([k, n]) => `${num(n)} ${k}`).join(' · ')}</span>` : null}</div>
    </div>`;
  })}</div>`;
}

/** The timeline chart of GET /api/rotations/:id/timeline. */
export function TimelineChart({ timeline }) {
  const [cumulative, setCumulative] = useState(true);
  const names = timeline.series.map((s) => s.step).join(',');
  const opts = useMemo(() => ({
    series: [{}, ...timeline.series.map((s, i) => ({
      label: s.step, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: false },
      ...(cumulative ? {} : { fill: `${COLOURS[i % COLOURS.length]}22`, paths: stepped }),
      value: (u, v) => (v === null ? '—' : num(v)),
    }))],
    axes: [timeAxis(), { label: cumulative ? 'acknowledged (total)' : `acks per ${duration(timeline.bucketMs)}`, size: 60 }],
    scales: { x: { time: true } },
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  }), [names, cumulative, timeline.bucketMs]);
  const data = useMemo(() => {
    const t0 = new Date(timeline.start).getTime();
    const n = Math.max(0, ...timeline.series.map((s) => s.counts.length));
    const xs = Array.from({ length: n + 1 }, (_, i) => (t0 + i * timeline.bucketMs) / 1000);
    const ys = timeline.series.map((s) => {
      let acc = 0;
      // Point i is the end of bucket i-1: cumulative counts up to that instant, or that bucket's count.
      return xs.map((_, i) => {
        if (i === 0) return 0;
        const c = s.counts[i - 1] ?? 0;
        acc += c;
        return cumulative ? acc : c;
      });
    });
    return [xs, ...ys];
  }, [timeline, cumulative]);
  const empty = timeline.series.every((s) => s.counts.every((c) => c === 0));
  return html`<div class="timeline">
    <div class="chart-head">
      <h3>Acknowledgements over time</h3>
      <div class="toggle" role="group" aria-label="Chart mode">
        <button type="button" class=${cumulative ? 'active' : ''} onClick=${() => setCumulative(true)}>cumulative</button>
        <button type="button" class=${!cumulative ? 'active' : ''} onClick=${() => setCumulative(false)}>per ${duration(timeline.bucketMs)}</button>
      </div>
    </div>
    ${empty ? html`<p class="muted">No acknowledgement yet.</p>` : html`<${Chart} opts=${opts} data=${data} height=${240} label="Acknowledgements per step over time" />`}
  </div>`;
}
