// Funnel: visitors → leads → each CRM stage → customers, per row of any grouping, with the
// rate of each step. Leads, stages and customers are credited by the chosen model, so a
// row's funnel answers "what did this channel bring" under that model.

import type { SourceRow, SourcesReport } from '../api';
import { baseParams, Status, useApiMany, useCtx, ViewHeading } from '../app';
import { ChartView } from '../chart';
import { kindName, modelName, plural, ratio } from '../format';
import { MODELS } from '../state';
import { Table, type Column } from '../table';
import { groupName, ReportControls } from './sources';

interface FunnelRow {
  key: string;
  visitors: number;
  leads: number;
  stages: number[];
  customers: number;
}

export function Funnel() {
  const c = useCtx();
  const s = c.state;
  const stages = (c.facets?.conversion_kinds ?? []).map((k) => k.kind).filter((k) => k !== 'lead' && k !== 'customer');
  const params = { ...baseParams(c), group_by: s.group_by, model: s.model };
  const loaded = useApiMany<SourcesReport>('reports/sources', [
    { ...params, conversion: 'customer' },
    ...stages.map((k) => ({ ...params, conversion: k })),
  ]);
  const [main, ...perStage] = loaded.data ?? [];
  const cur = main?.currency ?? c.currency;
  const toRow = (r: SourceRow, i: number | null): FunnelRow => ({
    key: r.key,
    visitors: r.visitors,
    leads: r.leads,
    customers: r.customers,
    stages: perStage.map((rep) => (i === null ? rep.totals.conversions : (rep.rows.find((x) => x.key === r.key)?.conversions ?? 0))),
  });
  const rows = (main?.rows ?? []).filter((r) => r.key !== '(unattributed)' || r.leads + r.customers > 0).map((r) => toRow(r, 0));
  const total = main ? toRow(main.totals, null) : null;
  const steps = ['Visitors', 'Leads', ...stages.map(plural), 'Customers'];
  const columns: Column<FunnelRow>[] = [
    { key: 'key', label: groupName(s.group_by), kind: 'text', value: (r) => r.key },
    { key: 'visitors', label: 'Visitors', kind: 'count', value: (r) => r.visitors },
    { key: 'leads', label: 'Leads', kind: 'count', value: (r) => r.leads },
    { key: 'lead_rate', label: 'Visitor → lead', kind: 'percent', value: (r) => ratio(r.leads, r.visitors) },
  ];
  let prevLabel = 'lead';
  stages.forEach((k, i) => {
    const from = prevLabel;
    columns.push({ key: `stage_${k}`, label: plural(k), kind: 'count', value: (r) => r.stages[i] ?? 0 });
    columns.push({
      key: `stage_${k}_rate`,
      label: `${kindName(from)} → ${kindName(k).toLowerCase()}`,
      kind: 'percent',
      value: (r) => ratio(r.stages[i] ?? 0, i === 0 ? r.leads : (r.stages[i - 1] ?? 0)),
    });
    prevLabel = k;
  });
  columns.push({ key: 'customers', label: 'Customers', kind: 'count', value: (r) => r.customers });
  columns.push({
    key: 'customer_rate',
    label: `${kindName(prevLabel)} → customer`,
    kind: 'percent',
    value: (r) => ratio(r.customers, stages.length ? (r.stages[stages.length - 1] ?? 0) : r.leads),
  });
  columns.push({ key: 'visitor_customer', label: 'Visitor → customer', kind: 'percent', value: (r) => ratio(r.customers, r.visitors) });
  return (
    <section id="funnel-section" aria-labelledby="view-heading">
      <ViewHeading>Funnel</ViewHeading>
      <ReportControls conversion={false} />
      <Status id="funnel" loaded={loaded} empty={!!main && rows.length === 0}>
        Each step's rate is that step ÷ the step before; leads{stages.length ? `, ${stages.map(plural).join(', ').toLowerCase()}` : ''} and customers credited by{' '}
        {modelName(MODELS, s.model)}.
      </Status>
      {total && (
        <ChartView
          id="funnel-chart"
          type="bar"
          horizontal
          title="Funnel of the whole range"
          labels={steps}
          series={[{ label: 'Total', data: [total.visitors, total.leads, ...total.stages, total.customers] }]}
          kind="count"
          currency={cur}
          height={Math.max(160, steps.length * 40 + 40)}
        />
      )}
      {main && total && (
        <Table
          id="funnel"
          caption="Funnel per row"
          columns={columns}
          rows={rows}
          rowKey={(r) => r.key}
          currency={cur}
          footer={[{ key: 'total', row: { ...total, key: 'Total' }, className: 'total' }]}
          csvName={`closeloop-funnel-${s.group_by}-${c.from}-${c.to}.csv`}
        />
      )}
    </section>
  );
}
