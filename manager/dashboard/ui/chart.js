/**
 * A uPlot chart as a component: built once per `opts` identity, fed new
 * data with setData (cheap), resized with its container.
 */
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** Renders `data` (uPlot's column arrays) with `opts` (without width/height). */
export function Chart({ opts, data, height = 260, label }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const el = box.current;
    const p = new uPlot({ ...opts, width: Math.max(el.clientWidth, 200), height }, data, el);
    plot.current = p;
    const ro = new ResizeObserver(() => p.setSize({ width: Math.max(el.clientWidth, 200), height }));
    ro.observe(el);
    return () => { ro.disconnect(); p.destroy(); plot.current = null; };
  }, [opts, height]);
  useEffect(() => { if (plot.current) plot.current.setData(data); }, [data]);
  return html`<div class="chart" ref=${box} role="img" aria-label=${label}></div>`;
}

/** The dashboard's series colours, in order. */
export const COLOURS = ['#1f6fb2', '#d9822b', '#2e9e5b', '#b23b3b', '#7a4fb8', '#8c6d1f', '#3a8f9c', '#c0508f'];

const pad = (n) => String(n).padStart(2, '0');

/** A 24-hour time axis: "10:42", "10:42:30" or "10:42:30.5" as the ticks get closer, the date for days. */
export function timeAxis() {
  return {
    space: 90,
    values: (u, splits, axisIdx, space, incr) => splits.map((s) => {
      const d = new Date(s * 1000);
      const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      if (incr >= 86_400) return `${d.getDate()}/${d.getMonth() + 1}`;
      if (incr < 1) return `${hm}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0').slice(0, 1)}`;
      return incr < 60 ? `${hm}:${pad(d.getSeconds())}` : hm;
    }),
  };
}
