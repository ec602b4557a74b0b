// Leads: a searchable list (email, source, stage, first seen in the range), each lead
// opening its journey.

import { useEffect, useState } from 'preact/hooks';
import { describe, get, type LeadSummary, type LeadsList } from '../api';
import { useCtx, ViewHeading } from '../app';
import { addDays } from '../state';
import { dateTime, kindName } from '../format';
import { Table, type Column } from '../table';

const PAGE = 50;

function touchText(t: LeadSummary['first_touch']): string {
  if (!t) return '';
  return [t.channel, `${t.source} / ${t.medium}`, t.campaign].filter(Boolean).join(' · ');
}

export function stageOf(l: LeadSummary): string {
  if (l.customer) return 'customer';
  const st = l.stages ?? [];
  return st.length ? (st[st.length - 1] ?? 'lead') : 'lead';
}

export function Leads() {
  const c = useCtx();
  const s = c.state;
  const [rows, setRows] = useState<LeadSummary[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [status, setStatus] = useState<{ state: string; text: string }>({ state: 'loading', text: 'Loading…' });
  const [q, setQ] = useState(s.q);
  const [src, setSrc] = useState(s.lsource);
  const params = (cursor?: string) => ({
    email: s.q || undefined,
    source: s.lsource || undefined,
    stage: s.lstage || undefined,
    from: c.from,
    to: addDays(c.to, 1),
    limit: String(PAGE),
    cursor,
  });
  const load = (cursor: string | undefined, ac: AbortController) => {
    setStatus({ state: 'loading', text: 'Loading…' });
    get<LeadsList>(c.creds, 'leads', params(cursor), ac.signal).then(
      (list) => {
        if (ac.signal.aborted) return;
        setRows((old) => (cursor ? [...old, ...list.leads] : list.leads));
        setNext(list.next_cursor);
        setStatus({ state: 'ok', text: '' });
      },
      (e: unknown) => {
        if (!ac.signal.aborted) setStatus({ state: 'error', text: describe(e) });
      },
    );
  };
  useEffect(() => {
    const ac = new AbortController();
    load(undefined, ac);
    return () => ac.abort();
  }, [s.q, s.lsource, s.lstage, c.from, c.to, c.creds.key]);
  useEffect(() => {
    setQ(s.q);
    setSrc(s.lsource);
  }, [s.q, s.lsource]);
  const kinds = ['lead', 'customer', ...(c.facets?.conversion_kinds ?? []).map((k) => k.kind).filter((k) => k !== 'lead' && k !== 'customer')];
  const columns: Column<LeadSummary>[] = [
    { key: 'email', label: 'Email', kind: 'text', value: (l) => l.email },
    { key: 'name', label: 'Name', kind: 'text', value: (l) => [l.name, l.company].filter(Boolean).join(', ') || null },
    { key: 'first_seen', label: 'Became a lead', kind: 'text', value: (l) => dateTime(l.first_seen) },
    { key: 'first_touch', label: 'First touch', kind: 'text', value: (l) => touchText(l.first_touch) || null },
    { key: 'latest_touch', label: 'Latest touch', kind: 'text', value: (l) => touchText(l.latest_touch) || null },
    { key: 'stage', label: 'Stage', kind: 'text', value: (l) => kindName(stageOf(l)) },
    { key: 'revenue', label: 'Revenue', kind: 'money', value: (l) => l.revenue },
    { key: 'visitors', label: 'Devices', kind: 'count', value: (l) => l.visitors },
  ];
  return (
    <section id="leads-section" aria-labelledby="view-heading">
      <ViewHeading>Leads</ViewHeading>
      <form
        class="controls"
        role="search"
        aria-label="Search the leads"
        onSubmit={(e) => {
          e.preventDefault();
          c.set({ q: q.trim(), lsource: src.trim() });
        }}
      >
        <label>
          Email contains
          <input id="lead_q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} spellcheck={false} autocomplete="off" />
        </label>
        <label>
          Source
          <input id="lead_source" list="lead-sources" value={src} onInput={(e) => setSrc(e.currentTarget.value)} spellcheck={false} autocomplete="off" />
          <datalist id="lead-sources">
            {(c.facets?.values.source ?? []).map((v) => (
              <option value={v.value} key={v.value} />
            ))}
          </datalist>
        </label>
        <label>
          Stage reached
          <select id="lead_stage" value={s.lstage} onChange={(e) => c.set({ lstage: e.currentTarget.value })}>
            <option value="">any</option>
            {kinds.map((k) => (
              <option value={k} key={k}>
                {kindName(k)}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Search</button>
      </form>
      <p class={`status ${status.state}`} id="leads-status" data-state={status.state} role="status">
        {status.text || `${rows.length} lead${rows.length === 1 ? '' : 's'} who became leads in this range${next ? ' (more below)' : ''}. Choose an email to see the journey.`}
      </p>
      <Table
        id="leads"
        caption="Leads"
        columns={columns}
        rows={rows}
        rowKey={(l) => l.lead}
        currency={c.currency}
        csvName={`closeloop-leads-${c.from}-${c.to}.csv`}
        onRowClick={(l) => c.set({ view: 'lead', lead: l.lead }, true)}
        rowClickLabel={(l) => `Open the journey of ${l.email}`}
        empty="No lead matches in this range."
      />
      {next && (
        <button type="button" class="secondary" id="leads-more" onClick={() => load(next, new AbortController())}>
          Show {PAGE} more
        </button>
      )}
    </section>
  );
}
