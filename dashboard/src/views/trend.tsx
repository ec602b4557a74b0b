// Trend: the figures by day or week, a chart of one with readable axes (whole numbers for
// counts, "Sep 7" or "Week of Sep 7" for buckets), and every figure in a table.

import type { TimeseriesPoint, TimeseriesReport } from '../api';
import { baseParams, Status, useApi, useCtx, ViewHeading } from '../app';
import { ChartView } from '../chart';
import { bucketLabel } from '../format';
import { TREND_METRICS } from '../state';
import { Table, type Column } from '../table';

export function Trend() {
  const c = useCtx();
  const s = c.state;
  const loaded = useApi<TimeseriesReport>('reports/timeseries', { ...baseParams(c), model: s.model, granularity: s.granularity });
  const report = loaded.data;
  const points = report?.points ?? [];
  const cur = report?.currency ?? c.currency;
  const g = report?.granularity ?? s.granularity;
  const metric = TREND_METRICS.find(([k]) => k === s.metric) ?? TREND_METRICS[0]!;
  const value = (p: TimeseriesPoint, k: string) => (p.figures as unknown as Record<string, number | null>)[k] ?? null;
  const columns: Column<TimeseriesPoint>[] = [
    { key: 'bucket', label: g === 'week' ? 'Week' : 'Day', kind: 'text', value: (p) => bucketLabel(p.from, g) },
    ...TREND_METRICS.map(([k, l, kind]) => ({ key: k, label: l, kind: kind === 'money' ? ('money' as const) : ('count' as const), value: (p: TimeseriesPoint) => value(p, k) })),
  ];
  return (
    <section id="trend-section" aria-labelledby="view-heading">
      <ViewHeading>Trend</ViewHeading>
      <form class="controls" onSubmit={(e) => e.preventDefault()} aria-label="Trend settings">
        <label>
          Figure
          <select id="metric" value={s.metric} onChange={(e) => c.set({ metric: e.currentTarget.value })}>
            {TREND_METRICS.map(([k, l]) => (
              <option value={k} key={k}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          By
          <select id="granularity" value={s.granularity} onChange={(e) => c.set({ granularity: e.currentTarget.value })}>
            <option value="day">day</option>
            <option value="week">week (Monday to Sunday)</option>
          </select>
        </label>
      </form>
      <Status id="trend" loaded={loaded} empty={!!report && points.length === 0}>
        Days and weeks in UTC; a week starts on Monday.
      </Status>
      {points.length > 0 && (
        <ChartView
          id="trend-chart"
          type={metric[2] === 'money' ? 'bar' : 'bar'}
          title={`${metric[1]} by ${g}`}
          labels={points.map((p) => bucketLabel(p.from, g))}
          series={[{ label: metric[1], data: points.map((p) => value(p, metric[0])) }]}
          kind={metric[2] === 'money' ? 'money' : 'count'}
          currency={cur}
        />
      )}
      {report && (
        <Table
          id="trend"
          caption={`Figures by ${g}`}
          columns={columns}
          rows={points}
          rowKey={(p) => p.bucket}
          currency={cur}
          csvName={`closeloop-trend-${g}-${c.from}-${c.to}.csv`}
        />
      )}
    </section>
  );
}
