// Pages: views, entrances, exits, assists and direct conversions per page, sortable by
// every column, with the seed's "poorly performing pages" flagged by a rule said on screen.

import type { PageRow, PagesReport } from '../api';
import { baseParams, Status, useApi, useCtx, ViewHeading } from '../app';
import { percent, ratio } from '../format';
import { Table, type Column } from '../table';

/** Pages with fewer views are never flagged (too little to judge). */
export const MIN_VIEWS = 5;

/** Conversions a page took part in per view: the leads it assisted and those on it. */
export function assistRate(r: PageRow): number {
  return r.views > 0 ? (r.assisted_leads + r.direct_conversions) / r.views : 0;
}

/** The flagged pages: read at least as much as the median page (and at least
 * [`MIN_VIEWS`] times), with an assist rate under half the site's. */
export function poorlyPerforming(rows: PageRow[]): { flagged: Set<string>; median: number; siteRate: number } {
  const views = rows.map((r) => r.views).sort((a, b) => a - b);
  const mid = Math.floor(views.length / 2);
  const median = views.length === 0 ? 0 : views.length % 2 ? (views[mid] ?? 0) : ((views[mid - 1] ?? 0) + (views[mid] ?? 0)) / 2;
  const total = rows.reduce((n, r) => n + r.views, 0);
  const helped = rows.reduce((n, r) => n + r.assisted_leads + r.direct_conversions, 0);
  const siteRate = total > 0 ? helped / total : 0;
  const flagged = new Set(
    rows.filter((r) => r.views >= Math.max(MIN_VIEWS, median) && siteRate > 0 && assistRate(r) < siteRate / 2).map((r) => r.path),
  );
  return { flagged, median, siteRate };
}

export function Pages() {
  const c = useCtx();
  const s = c.state;
  const loaded = useApi<PagesReport>('reports/pages', { ...baseParams(c), sort: 'views' });
  const report = loaded.data;
  const rows = report?.rows ?? [];
  const cur = report?.currency ?? c.currency;
  const { flagged, median, siteRate } = poorlyPerforming(rows);
  const columns: Column<PageRow>[] = [
    {
      key: 'path',
      label: 'Page',
      kind: 'text',
      value: (r) => r.path,
      extra: (r) => (flagged.has(r.path) ? <span class="badge bad">poorly performing</span> : null),
    },
    { key: 'views', label: 'Views', kind: 'count', value: (r) => r.views },
    { key: 'entrances', label: 'Entrances', kind: 'count', value: (r) => r.entrances },
    { key: 'exits', label: 'Exits', kind: 'count', value: (r) => r.exits ?? null },
    { key: 'exit_rate', label: 'Exit rate', kind: 'percent', value: (r) => (r.exits === undefined ? null : ratio(r.exits, r.views)), title: 'exits ÷ views' },
    { key: 'assisted_leads', label: 'Assisted leads', kind: 'count', value: (r) => r.assisted_leads },
    { key: 'assisted_customers', label: 'Assisted customers', kind: 'count', value: (r) => r.assisted_customers },
    { key: 'assisted_revenue', label: 'Assisted revenue', kind: 'money', value: (r) => r.assisted_revenue },
    { key: 'direct_conversions', label: 'Direct conversions', kind: 'count', value: (r) => r.direct_conversions },
    { key: 'assist_rate', label: 'Assist rate', kind: 'percent', value: assistRate, title: '(assisted leads + direct conversions) ÷ views' },
  ];
  const sortKey = columns.some((col) => col.key === s.psort) ? s.psort : 'views';
  return (
    <section id="pages-section" aria-labelledby="view-heading">
      <ViewHeading>Pages</ViewHeading>
      <Status id="pages" loaded={loaded} empty={!!report && rows.length === 0} emptyText="No page views in this range.">
        Choose a column heading to sort by it.
      </Status>
      {report && (
        <p class="note" id="flag-rule">
          <span class="badge bad">poorly performing</span> pages are read a lot but help few conversions: at least as many
          views as the median page ({median.toLocaleString('en-US')}) and at least {MIN_VIEWS}, with an assist rate (assisted
          leads and direct conversions per view) under half the site's ({percent(siteRate / 2)}; the site's is{' '}
          {percent(siteRate)}). {flagged.size ? `${flagged.size} flagged.` : 'None flagged in this range.'}
        </p>
      )}
      {report && (
        <Table
          id="pages"
          caption="Pages"
          columns={columns}
          rows={rows}
          rowKey={(r) => r.path}
          rowClass={(r) => (flagged.has(r.path) ? 'flagged' : undefined)}
          currency={cur}
          sort={{ key: sortKey, order: s.porder === 'asc' ? 'asc' : 'desc', onSort: (key, order) => c.set({ psort: key, porder: order }) }}
          csvName={`closeloop-pages-${c.from}-${c.to}.csv`}
          empty="No page views in this range."
        />
      )}
    </section>
  );
}
