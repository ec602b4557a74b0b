// Charts: Chart.js (MIT), tree-shaken to the bar and line charts used here and bundled by
// esbuild at build time. Axes are readable (12 px text, whole-number ticks for counts,
// currency for money, dates as "Sep 7"), colours follow the light or dark theme, and the
// values are reachable by keyboard: the chart takes focus, arrow keys move from point to
// point (Home/End to the ends), and each value is read out in a live region and shown
// under the chart. Every chart sits beside a table of the same figures.

import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js';
import { useEffect, useRef, useState } from 'preact/hooks';
import { count, money, percent } from './format';

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Tooltip, Legend);

export type ValueKind = 'count' | 'money' | 'percent';

export interface Series {
  label: string;
  data: (number | null)[];
}

export interface ChartProps {
  id: string;
  type: 'bar' | 'line';
  title: string;
  labels: string[];
  series: Series[];
  kind: ValueKind;
  currency: string;
  horizontal?: boolean;
  height?: number;
}

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

export function formatValue(kind: ValueKind, v: number | null, currency: string): string {
  if (kind === 'money') return money(v, currency);
  if (kind === 'percent') return percent(v);
  return count(v);
}

export function ChartView(p: ChartProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  const [active, setActive] = useState<number | null>(null);
  const [scheme, setScheme] = useState(0);

  useEffect(() => {
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    const on = () => setScheme((n) => n + 1);
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, []);

  useEffect(() => {
    const el = canvas.current;
    if (!el) return undefined;
    const palette = [css('--series-1'), css('--series-2'), css('--series-3')];
    const text = css('--muted');
    const grid = css('--line');
    const fmt = (v: number) => formatValue(p.kind, v, p.currency);
    const valueAxis = {
      beginAtZero: true,
      grid: { color: grid },
      border: { display: false },
      ticks: {
        color: text,
        font: { size: 12 },
        precision: p.kind === 'count' ? 0 : undefined,
        callback: (v: string | number) => fmt(Number(v)),
      },
    };
    const labelAxis = {
      grid: { display: false },
      ticks: { color: text, font: { size: 12 }, autoSkip: true, maxRotation: 0 },
    };
    const reduced = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    const config: ChartConfiguration<'bar' | 'line'> = {
      type: p.type,
      data: {
        labels: p.labels,
        datasets: p.series.map((s, i) => ({
          label: s.label,
          data: s.data,
          backgroundColor: palette[i % palette.length],
          borderColor: palette[i % palette.length],
          borderWidth: p.type === 'line' ? 2 : 0,
          pointRadius: p.type === 'line' ? 2 : 0,
          pointHoverRadius: 5,
          tension: 0.2,
          maxBarThickness: 36,
        })),
      },
      options: {
        indexAxis: p.horizontal ? 'y' : 'x',
        responsive: true,
        maintainAspectRatio: false,
        animation: reduced ? false : { duration: 250 },
        interaction: { mode: 'index', intersect: false },
        plugins: {
          legend: { display: p.series.length > 1, labels: { color: text, font: { size: 12 } } },
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${fmt(Number(p.horizontal ? ctx.parsed.x : ctx.parsed.y))}`,
            },
          },
        },
        scales: p.horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
      },
    };
    chart.current = new Chart(el, config);
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, [p.type, p.kind, p.currency, p.horizontal, JSON.stringify(p.labels), JSON.stringify(p.series), scheme]);

  useEffect(() => setActive(null), [JSON.stringify(p.labels)]);

  const point = (i: number) => {
    const c = chart.current;
    if (!c) return;
    const elements = p.series.map((_, d) => ({ datasetIndex: d, index: i }));
    c.setActiveElements(elements);
    c.tooltip?.setActiveElements(elements, { x: 0, y: 0 });
    c.update();
    setActive(i);
  };

  const onKey = (e: KeyboardEvent) => {
    const n = p.labels.length;
    if (!n) return;
    const cur = active ?? -1;
    let next: number | null = null;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') next = Math.min(n - 1, cur + 1);
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') next = Math.max(0, cur < 0 ? 0 : cur - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = n - 1;
    if (next !== null) {
      e.preventDefault();
      point(next);
    }
  };

  const readout =
    active === null
      ? ''
      : `${p.labels[active] ?? ''}: ${p.series
          .map((s) => `${s.label} ${formatValue(p.kind, s.data[active] ?? null, p.currency)}`)
          .join(', ')}`;

  return (
    <figure class="chart" id={p.id}>
      <div
        class="chart-box"
        style={{ height: `${p.height ?? 260}px` }}
        tabIndex={0}
        role="img"
        aria-roledescription="chart"
        aria-label={`${p.title}. Use the arrow keys to read each value; the table below has them all.`}
        onKeyDown={onKey}
        onBlur={() => {
          chart.current?.setActiveElements([]);
          chart.current?.tooltip?.setActiveElements([], { x: 0, y: 0 });
          chart.current?.update();
        }}
      >
        <canvas ref={canvas} />
      </div>
      <figcaption>
        <span class="chart-title">{p.title}</span>
        <span class="readout" aria-live="polite" data-readout="">
          {readout}
        </span>
      </figcaption>
    </figure>
  );
}
