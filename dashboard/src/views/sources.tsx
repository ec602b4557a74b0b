// Sources: the sources report with the conversion picker (lead, customer, every CRM stage
// the site has sent), model, lookback, half-life and grouping; rows open the segment they
// stand for (drill-down); spend is reconciled: an "Unallocated spend" line carries what
// the grouping cannot split, and the totals add up.

import type { SourceRow, SourcesReport, SpendKey } from '../api';
import { baseParams, Status, useApi, useCtx, ViewHeading, type Ctx } from '../app';
import { ChartView } from '../chart';
import { kindName, modelName, money, plural, ratio } from '../format';
import { GROUPS, MODELS, SEGMENTS } from '../state';
import { Table, type Column } from '../table';

/** The segment a row of `group_by` opens, and the grouping one level down. */
const DRILL: Record<string, [string, string]> = {
  channel: ['channel', 'source'],
  source: ['source', 'campaign'],
  campaign: ['campaign', 'landing_page'],
  landing_page: ['landing_page', 'channel'],
};

export function conversionKinds(c: Ctx): string[] {
  const kinds = ['lead', 'customer'];
  for (const k of c.facets?.conversion_kinds ?? []) if (!kinds.includes(k.kind)) kinds.push(k.kind);
  if (!kinds.includes(c.state.conversion)) kinds.push(c.state.conversion);
  return kinds;
}

export function ReportControls(p: { compare?: boolean; conversion?: boolean; group?: boolean }) {
  const c = useCtx();
  const s = c.state;
  return (
    <form class="controls" onSubmit={(e) => e.preventDefault()} aria-label="Report settings">
      {p.group !== false && (
        <label>
          Group by
          <select id="group_by" value={s.group_by} onChange={(e) => c.set({ group_by: e.currentTarget.value })}>
            {GROUPS.map(([k, l]) => (
              <option value={k} key={k}>
                {l}
              </option>
            ))}
          </select>
        </label>
      )}
      {p.conversion !== false && (
        <label>
          Conversion
          <select id="conversion" value={s.conversion} onChange={(e) => c.set({ conversion: e.currentTarget.value })}>
            {conversionKinds(c).map((k) => (
              <option value={k} key={k}>
                {kindName(k)}
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        {p.compare ? 'Model A' : 'Model'}
        <select id="model" value={s.model} onChange={(e) => c.set({ model: e.currentTarget.value })}>
          {MODELS.map(([k, l]) => (
            <option value={k} key={k}>
              {l}
            </option>
          ))}
        </select>
      </label>
      {p.compare && (
        <label>
          Model B
          <select id="model_b" value={s.model_b} onChange={(e) => c.set({ model_b: e.currentTarget.value })}>
            {MODELS.map(([k, l]) => (
              <option value={k} key={k}>
                {l}
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        Lookback (days)
        <input
          id="lookback"
          type="number"
          min={1}
          max={3650}
          value={s.lookback}
          onChange={(e) => {
            const v = Number(e.currentTarget.value);
            if (Number.isInteger(v) && v >= 1 && v <= 3650) c.set({ lookback: String(v) });
          }}
        />
      </label>
      {(s.model === 'time_decay' || (p.compare && s.model_b === 'time_decay')) && (
        <label>
          Half-life (days)
          <input
            id="half_life"
            type="number"
            min={0.1}
            max={3650}
            step="any"
            value={s.half_life}
            onChange={(e) => {
              const v = Number(e.currentTarget.value);
              if (Number.isFinite(v) && v > 0 && v <= 3650) c.set({ half_life: String(v) });
            }}
          />
        </label>
      )}
    </form>
  );
}

export function groupName(g: string): string {
  return GROUPS.find(([k]) => k === g)?.[1] ?? g;
}

/** A row's label: `(unattributed)` and `(not set)` kept as the API writes them. */
function label(r: SourceRow): string {
  return r.key;
}

export function sourcesParams(c: Ctx, model = c.state.model) {
  return { ...baseParams(c), group_by: c.state.group_by, model, conversion: c.state.conversion };
}

function spendKeyText(k: SpendKey): string {
  return [k.channel, k.source, k.campaign].filter(Boolean).join(' · ');
}

/** Why spend is unallocated, in words, for the grouping. */
export function unallocatedWhy(group: string): string {
  if (group === 'medium' || group === 'landing_page') {
    return `Spend is recorded per channel, source or campaign, never per ${groupName(group).toLowerCase()}, so none of it can be put on a row.`;
  }
  return `These spend records were not recorded with a ${groupName(group).toLowerCase()}, so they are not guessed onto a row.`;
}

export function SpendNote(p: { report: SourcesReport; group: string }) {
  const c = useCtx();
  const r = p.report.spend_reconciliation;
  if (!r) return null;
  const cur = p.report.currency;
  return (
    <div class="note" id="spend-note">
      {r.unallocated > 0 && (
        <p>
          <strong>Unallocated spend {money(r.unallocated, cur)}</strong>: {unallocatedWhy(p.group)}{' '}
          Recorded for {r.unallocated_by.map((k) => `${spendKeyText(k)} (${money(k.spend, cur)})`).join('; ')}. Rows{' '}
          {money(r.rows, cur)} + unallocated {money(r.unallocated, cur)} = total {money(r.total, cur)}.
        </p>
      )}
      {r.basis === 'estimated' && (
        <p>
          <strong>Estimated spend in this segment</strong>: spend is not recorded per{' '}
          {Object.keys(c.state.filters)
            .map((k) => SEGMENTS.find(([d]) => d === k)?.[1].toLowerCase() ?? k)
            .join(' or ')}
          , so each spend record counts in proportion to its sessions that are in the segment.
        </p>
      )}
      {r.not_estimated > 0 && (
        <p>
          <strong>{money(r.not_estimated, cur)} of spend left out</strong>: its records (
          {r.not_estimated_by.map(spendKeyText).join('; ')}) cover no tracked session in this range, so their share
          of the segment cannot be estimated.
        </p>
      )}
    </div>
  );
}

export function Sources() {
  const c = useCtx();
  const s = c.state;
  const loaded = useApi<SourcesReport>('reports/sources', sourcesParams(c));
  const report = loaded.data;
  const kind = s.conversion;
  const special = kind !== 'lead' && kind !== 'customer';
  const cur = report?.currency ?? c.currency;
  const drill = DRILL[s.group_by];
  const columns: Column<SourceRow>[] = [
    {
      key: 'key',
      label: groupName(s.group_by),
      kind: 'text',
      value: label,
      extra: (r) =>
        r.sessions === 0 && (r.spend ?? 0) > 0 && r.key !== 'total' && r.key !== '(unallocated spend)' ? (
          <span class="badge warn" title="Spend recorded for it, but no tracked visit in the range: are its links tagged?">
            no tracked visits
          </span>
        ) : null,
    },
    { key: 'visitors', label: 'Visitors', kind: 'count', value: (r) => r.visitors },
    { key: 'sessions', label: 'Sessions', kind: 'count', value: (r) => r.sessions },
    { key: 'leads', label: 'Leads', kind: 'count', value: (r) => r.leads },
    ...(special ? [{ key: 'conversions', label: plural(kind), kind: 'count' as const, value: (r: SourceRow) => r.conversions }] : []),
    { key: 'customers', label: 'Customers', kind: 'count', value: (r) => r.customers },
    { key: 'revenue', label: 'Revenue', kind: 'money', value: (r) => r.revenue },
    { key: 'spend', label: 'Spend', kind: 'money', value: (r) => r.spend },
    { key: 'cac', label: 'CAC', kind: 'money', value: (r) => r.cac, title: 'Customer acquisition cost: spend ÷ customers' },
    { key: 'revenue_per_customer', label: 'Revenue / customer', kind: 'money', value: (r) => r.revenue_per_customer },
    { key: 'roi', label: 'ROI', kind: 'percent', value: (r) => r.roi, title: '(revenue − spend) ÷ spend' },
    {
      key: 'conversion_rate',
      label: `${kindName(kind)} rate`,
      kind: 'percent',
      value: (r) => ratio(kind === 'lead' ? r.leads : kind === 'customer' ? r.customers : r.conversions, r.visitors),
      title: `${plural(kind)} ÷ visitors`,
    },
  ];
  const rec = report?.spend_reconciliation;
  const footer: { key: string; row: SourceRow; className?: string }[] = [];
  if (report && rec && rec.unallocated > 0) {
    footer.push({
      key: '(unallocated spend)',
      className: 'unallocated',
      row: {
        key: 'Unallocated spend',
        visitors: NaN,
        sessions: NaN,
        pageviews: NaN,
        leads: NaN,
        customers: NaN,
        revenue: NaN,
        conversions: NaN,
        conversion_revenue: NaN,
        spend: rec.unallocated,
        cac: null,
        revenue_per_customer: null,
        roi: null,
      },
    });
  }
  if (report) footer.push({ key: 'total', row: { ...report.totals, key: 'Total' }, className: 'total' });
  const chartRows = (report?.rows ?? []).slice(0, 12);
  const figure = special ? 'conversions' : kind === 'lead' ? 'leads' : 'customers';
  return (
    <section id="sources-section" aria-labelledby="view-heading" data-state={loaded.error ? 'error' : loaded.loading ? 'loading' : 'ok'}>
      <ViewHeading>Sources</ViewHeading>
      <ReportControls />
      <Status id="sources" loaded={loaded} empty={!!report && report.rows.length === 0}>
        {report && (
          <>
            {plural(kind)} credited by the {modelName(MODELS, s.model)} model, {s.lookback}-day lookback.
            {drill && SEGMENTS.some(([k]) => k === drill[0]) && ' Choose a row to see its segment.'}
          </>
        )}
      </Status>
      {report && report.rows.length > 0 && (
        <ChartView
          id="sources-chart"
          type="bar"
          horizontal
          title={`${plural(kind)} by ${groupName(s.group_by).toLowerCase()} (${modelName(MODELS, s.model)})`}
          labels={chartRows.map(label)}
          series={[{ label: plural(kind), data: chartRows.map((r) => r[figure]) }]}
          kind="count"
          currency={cur}
          height={Math.max(160, chartRows.length * 30 + 40)}
        />
      )}
      {report && (
        <Table
          id="sources"
          caption={`Sources by ${groupName(s.group_by).toLowerCase()}`}
          columns={columns}
          rows={report.rows}
          rowKey={label}
          currency={cur}
          footer={footer}
          csvName={`closeloop-sources-${s.group_by}-${c.from}-${c.to}.csv`}
          onRowClick={
            drill
              ? (r) => {
                  if (r.key === '(unattributed)') return;
                  c.set({ filters: { ...s.filters, [drill[0]]: r.key }, group_by: drill[1] }, true);
                }
              : undefined
          }
          rowClickLabel={(r) => `Show the segment ${groupName(s.group_by).toLowerCase()} ${r.key}`}
        />
      )}
      {report && <SpendNote report={report} group={s.group_by} />}
    </section>
  );
}
