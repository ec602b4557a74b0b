// Model comparison: two attribution models side by side per row (credited conversions of
// the chosen kind and their revenue), the difference, and a chart of both — how first touch
// differs from last touch is the first thing a marketer asks.

import type { SourcesReport } from '../api';
import { Status, useApiMany, useCtx, ViewHeading } from '../app';
import { ChartView } from '../chart';
import { modelName, plural } from '../format';
import { MODELS } from '../state';
import { Table, type Column } from '../table';
import { groupName, ReportControls, sourcesParams } from './sources';

interface CompareRow {
  key: string;
  a: number;
  b: number;
  ra: number;
  rb: number;
}

export function Compare() {
  const c = useCtx();
  const s = c.state;
  const loaded = useApiMany<SourcesReport>('reports/sources', [sourcesParams(c, s.model), sourcesParams(c, s.model_b)]);
  const [A, B] = loaded.data ?? [];
  const cur = A?.currency ?? c.currency;
  const keys: string[] = [];
  for (const r of [...(A?.rows ?? []), ...(B?.rows ?? [])]) if (!keys.includes(r.key)) keys.push(r.key);
  const rows: CompareRow[] = keys.map((key) => {
    const x = A?.rows.find((r) => r.key === key);
    const y = B?.rows.find((r) => r.key === key);
    return { key, a: x?.conversions ?? 0, b: y?.conversions ?? 0, ra: x?.conversion_revenue ?? 0, rb: y?.conversion_revenue ?? 0 };
  });
  rows.sort((p, q) => Math.max(q.a, q.b) - Math.max(p.a, p.b) || p.key.localeCompare(q.key));
  const nameA = modelName(MODELS, s.model);
  const nameB = modelName(MODELS, s.model_b);
  const what = plural(s.conversion);
  const withRevenue = rows.some((r) => r.ra || r.rb);
  const columns: Column<CompareRow>[] = [
    { key: 'key', label: groupName(s.group_by), kind: 'text', value: (r) => r.key },
    { key: 'a', label: `${what}: ${nameA}`, kind: 'count', value: (r) => r.a },
    { key: 'b', label: `${what}: ${nameB}`, kind: 'count', value: (r) => r.b },
    { key: 'diff', label: 'Difference (B − A)', kind: 'count', value: (r) => r.b - r.a },
    { key: 'diff_pct', label: 'Difference %', kind: 'percent', value: (r) => (r.a > 0 ? (r.b - r.a) / r.a : null) },
  ];
  if (withRevenue) {
    columns.push(
      { key: 'ra', label: `Revenue: ${nameA}`, kind: 'money', value: (r) => r.ra },
      { key: 'rb', label: `Revenue: ${nameB}`, kind: 'money', value: (r) => r.rb },
      { key: 'rdiff', label: 'Revenue difference', kind: 'money', value: (r) => r.rb - r.ra },
    );
  }
  const chartRows = rows.slice(0, 12);
  const totals: CompareRow | null =
    A && B ? { key: 'Total', a: A.totals.conversions, b: B.totals.conversions, ra: A.totals.conversion_revenue, rb: B.totals.conversion_revenue } : null;
  return (
    <section id="compare-section" aria-labelledby="view-heading">
      <ViewHeading>Compare models</ViewHeading>
      <ReportControls compare />
      <Status id="compare" loaded={loaded} empty={!!A && rows.length === 0}>
        {what} credited by {nameA} (A) and {nameB} (B).{' '}
        {s.model === 'data_driven_global' || s.model_b === 'data_driven_global'
          ? 'Data-driven (global) shares out the range’s conversions among the channels at once, not each conversion among its own touches, so its revenue (and a segment’s totals) can differ from other models’.'
          : 'Totals are the same under both models: only the split between rows changes.'}
      </Status>
      {rows.length > 0 && (
        <ChartView
          id="compare-chart"
          type="bar"
          horizontal
          title={`${what} by ${groupName(s.group_by).toLowerCase()}: ${nameA} and ${nameB}`}
          labels={chartRows.map((r) => r.key)}
          series={[
            { label: nameA, data: chartRows.map((r) => r.a) },
            { label: nameB, data: chartRows.map((r) => r.b) },
          ]}
          kind="count"
          currency={cur}
          height={Math.max(180, chartRows.length * 44 + 60)}
        />
      )}
      {totals && (
        <Table
          id="compare"
          caption={`${nameA} and ${nameB} side by side`}
          columns={columns}
          rows={rows}
          rowKey={(r) => r.key}
          currency={cur}
          footer={[{ key: 'total', row: totals, className: 'total' }]}
          csvName={`closeloop-compare-${s.model}-${s.model_b}-${c.from}-${c.to}.csv`}
        />
      )}
    </section>
  );
}
