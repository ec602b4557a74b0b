// Overview: the headline figures of the range (visitors, leads, customers, revenue, spend,
// CAC, ROI), each with its change against the previous period of the same length, the
// trend of visits and leads, and the channels at a glance.

import type { SourceRow, SourcesReport, TimeseriesReport } from '../api';
import { baseParams, Status, useApi, useApiMany, useCtx, ViewHeading } from '../app';
import { ChartView } from '../chart';
import { bucketLabel, change, count, DASH, isNum, modelName, money, percent, ratio, shortDate } from '../format';
import { MODELS, previousRange, rangeDays } from '../state';
import { Table, type Column } from '../table';

interface Kpi {
  key: string;
  label: string;
  value: (r: SourceRow) => number | null;
  show: (v: number | null, cur: string) => string;
  /** Lower is better (CAC). */
  lowerBetter?: boolean;
  /** Neither direction is better in itself (spend). */
  neutral?: boolean;
}

const KPIS: Kpi[] = [
  { key: 'visitors', label: 'Visitors', value: (r) => r.visitors, show: (v) => count(v) },
  { key: 'leads', label: 'Leads', value: (r) => r.leads, show: (v) => count(v) },
  { key: 'customers', label: 'Customers', value: (r) => r.customers, show: (v) => count(v) },
  { key: 'revenue', label: 'Revenue', value: (r) => r.revenue, show: (v, c) => money(v, c) },
  { key: 'spend', label: 'Spend', value: (r) => r.spend, show: (v, c) => money(v, c), neutral: true },
  { key: 'cac', label: 'CAC', value: (r) => r.cac, show: (v, c) => money(v, c), lowerBetter: true },
  { key: 'roi', label: 'ROI', value: (r) => r.roi, show: (v) => percent(v) },
];

export function Overview() {
  const c = useCtx();
  const [pf, pt] = previousRange(c.from, c.to);
  const model = c.state.model;
  const both = useApiMany<SourcesReport>('reports/sources', [
    { ...baseParams(c), group_by: 'channel', model },
    { ...baseParams(c, [pf, pt]), group_by: 'channel', model },
  ]);
  const weekly = rangeDays(c.from, c.to) > 62;
  const ts = useApi<TimeseriesReport>('reports/timeseries', {
    ...baseParams(c),
    model,
    granularity: weekly ? 'week' : 'day',
  });
  const [cur, prev] = both.data ?? [null, null];
  const currency = cur?.currency ?? c.currency;
  const days = rangeDays(c.from, c.to);
  const top: Column<SourceRow>[] = [
    { key: 'key', label: 'Channel', kind: 'text', value: (r) => r.key },
    { key: 'visitors', label: 'Visitors', kind: 'count', value: (r) => r.visitors },
    { key: 'leads', label: 'Leads', kind: 'count', value: (r) => r.leads },
    { key: 'customers', label: 'Customers', kind: 'count', value: (r) => r.customers },
    { key: 'revenue', label: 'Revenue', kind: 'money', value: (r) => r.revenue },
    { key: 'lead_rate', label: 'Lead rate', kind: 'percent', value: (r) => ratio(r.leads, r.visitors) },
  ];
  const points = ts.data?.points ?? [];
  return (
    <section id="overview-section" aria-labelledby="view-heading">
      <ViewHeading>Overview</ViewHeading>
      <Status id="overview" loaded={both}>
        {cur && (
          <>
            {shortDate(c.from, true)} – {shortDate(c.to, true)} ({days} days) against the previous {days} days (
            {shortDate(pf)} – {shortDate(pt, true)}). Leads, customers and revenue are whole conversions; channels credited by{' '}
            {modelName(MODELS, model)}.
          </>
        )}
      </Status>
      {cur && prev && (
        <ul class="kpis" id="kpis">
          {KPIS.map((k) => {
            const v = k.value(cur.totals);
            const p = k.value(prev.totals);
            // ROI is a ratio already: its change is in percentage points
            const points = k.key === 'roi' && isNum(v) && isNum(p) ? v - p : null;
            const ch = k.key === 'roi' ? points : change(v, p);
            const good = ch === null || ch === 0 || k.neutral ? 'flat' : (ch > 0) !== !!k.lowerBetter ? 'up' : 'down';
            return (
              <li class="kpi" data-kpi={k.key} key={k.key}>
                <span class="kpi-label">{k.label}</span>
                <span class="kpi-value" data-value="">
                  {k.show(v, currency)}
                </span>
                <span class={`kpi-change ${good}`} data-change="">
                  {ch === null
                    ? isNum(v) && v !== 0 && isNum(p) && p === 0
                      ? 'new (none before)'
                      : `${DASH} vs ${k.show(p, currency)} before`
                    : `${ch > 0 ? '▲' : ch < 0 ? '▼' : '■'} ${k.key === 'roi' ? `${count(Math.round(Math.abs(ch) * 100))} pts` : percent(Math.abs(ch))} vs ${k.show(p, currency)}`}
                </span>
              </li>
            );
          })}
        </ul>
      )}
      {points.length > 0 && ts.data && (
        <ChartView
          id="overview-chart"
          type="bar"
          title={`Sessions and leads by ${weekly ? 'week' : 'day'}`}
          labels={points.map((p) => bucketLabel(p.from, ts.data?.granularity ?? 'day'))}
          series={[
            { label: 'Sessions', data: points.map((p) => p.figures.sessions) },
            { label: 'Leads', data: points.map((p) => p.figures.leads) },
          ]}
          kind="count"
          currency={currency}
        />
      )}
      {cur && (
        <>
          <h3>Channels</h3>
          <Table
            id="overview-channels"
            caption="Channels at a glance"
            columns={top}
            rows={cur.rows}
            rowKey={(r) => r.key}
            currency={currency}
            csvName={`closeloop-overview-${c.from}-${c.to}.csv`}
            onRowClick={(r) => c.set({ view: 'sources', filters: { ...c.state.filters, channel: r.key }, group_by: 'source' }, true)}
            rowClickLabel={(r) => `Open the sources of channel ${r.key}`}
          />
        </>
      )}
    </section>
  );
}
