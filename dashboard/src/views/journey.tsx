// One lead's journey, as sales opens it before a call: its devices, a timeline of its
// sessions (each touch, the pages read), the form that made it a lead and each deal stage,
// and the credit every model gives each touch of each conversion.

import type { Journey as JourneyData, JourneyConversion, JourneySession } from '../api';
import { baseParams, Status, useApi, useCtx, ViewHeading } from '../app';
import { dateTime, kindName, modelName, money, percent } from '../format';
import { MODELS } from '../state';

type Item =
  | { t: string; kind: 'session'; s: JourneySession; n: number }
  | { t: string; kind: 'conversion'; c: JourneyConversion };

function touch(s: JourneySession): string {
  return [s.channel, `${s.source} / ${s.medium}`, s.campaign ? `campaign ${s.campaign}` : null].filter(Boolean).join(' · ');
}

export function JourneyView() {
  const c = useCtx();
  const lead = c.state.lead;
  const loaded = useApi<JourneyData>(lead ? `leads/${encodeURIComponent(lead)}` : null, baseParams(c));
  const j = loaded.data;
  const cur = c.currency;
  const sessions = j?.sessions ?? [];
  const number = new Map(sessions.map((s, i) => [s.id, i + 1]));
  const items: Item[] = [
    ...sessions.map((s, i) => ({ t: s.started_at, kind: 'session' as const, s, n: i + 1 })),
    ...(j?.conversions ?? []).map((cv) => ({ t: cv.conversion.at, kind: 'conversion' as const, c: cv })),
  ].sort((a, b) => a.t.localeCompare(b.t) || (a.kind === 'session' ? -1 : 1));
  const devices = (j?.visitors ?? []).map((v, i) => {
    const own = sessions.filter((s) => s.visitor === v);
    const first = own[0];
    return { id: v, n: i + 1, device: first?.device ?? 'unknown device', country: first?.country ?? '', sessions: own.length, first: first?.started_at };
  });
  const deviceOf = (visitor: string) => devices.find((d) => d.id === visitor);
  const stages = (j?.conversions ?? []).map((cv) => cv.conversion.kind);
  const won = (j?.conversions ?? []).filter((cv) => cv.conversion.kind === 'customer');
  return (
    <section id="lead-section" aria-labelledby="view-heading">
      <p>
        <button type="button" class="link" id="back-to-leads" onClick={() => c.set({ view: 'leads', lead: '' }, true)}>
          ← All leads
        </button>
      </p>
      <ViewHeading>{j?.email ?? lead}</ViewHeading>
      <Status id="lead" loaded={loaded} empty={!lead} emptyText="No lead chosen.">
        {j && (
          <>
            {devices.length} device{devices.length === 1 ? '' : 's'}, {sessions.length} session{sessions.length === 1 ? '' : 's'}
            {stages.length ? `; reached ${[...new Set(stages)].map((k) => kindName(k).toLowerCase()).join(', ')}` : ''}
            {won.length ? `; won ${money(won.reduce((n, w) => n + w.conversion.revenue, 0), cur)}` : ''}.
          </>
        )}
      </Status>
      {j && (
        <>
          <h3>Devices</h3>
          <ul class="devices" id="devices">
            {devices.map((d) => (
              <li key={d.id} data-visitor={d.id}>
                <strong>Device {d.n}</strong>: {d.device}
                {d.country ? `, ${d.country}` : ''} — {d.sessions} session{d.sessions === 1 ? '' : 's'}
                {d.first ? `, first seen ${dateTime(d.first)}` : ''} <span class="muted">({d.id})</span>
              </li>
            ))}
          </ul>
          <h3>Timeline</h3>
          <ol class="timeline" id="timeline">
            {items.map((it) =>
              it.kind === 'session' ? (
                <li class={`tl-session${it.s.is_bot ? ' bot' : ''}`} key={it.s.id} data-session={it.s.id}>
                  <time dateTime={it.s.started_at}>{dateTime(it.s.started_at)}</time>
                  <div>
                    <strong>Session {it.n}</strong> from <span data-touch="">{touch(it.s)}</span> on device {deviceOf(it.s.visitor)?.n ?? '?'}
                    {it.s.is_bot ? ' (flagged as a bot: never credited)' : ''}
                    <ol class="tl-pages">
                      {(j.pages ?? [])
                        .filter((p) => p.session === it.s.id)
                        .map((p, i) => (
                          <li key={`${p.at}-${i}`}>
                            <time dateTime={p.at}>{dateTime(p.at).slice(-9, -4)}</time> <span class="path">{p.path}</span>
                          </li>
                        ))}
                    </ol>
                  </div>
                </li>
              ) : (
                <li class={`tl-conversion kind-${it.c.conversion.kind === 'lead' || it.c.conversion.kind === 'customer' ? it.c.conversion.kind : 'stage'}`} key={it.c.conversion.id} data-conversion={it.c.conversion.kind}>
                  <time dateTime={it.c.conversion.at}>{dateTime(it.c.conversion.at)}</time>
                  <div>
                    {it.c.conversion.kind === 'lead' ? (
                      <strong>Became a lead{it.c.conversion.page ? ` — form on ${it.c.conversion.page}` : ''}</strong>
                    ) : it.c.conversion.kind === 'customer' ? (
                      <strong>Won: {money(it.c.conversion.revenue, cur)}</strong>
                    ) : (
                      <strong>Deal reached {kindName(it.c.conversion.kind).toLowerCase()}</strong>
                    )}
                    {it.c.conversion.session && number.has(it.c.conversion.session) ? ` in session ${number.get(it.c.conversion.session)}` : ''}
                  </div>
                </li>
              ),
            )}
          </ol>
          <h3>Credit per touch</h3>
          <p class="note">
            What each model gives each touch (session) of each conversion, within the {c.state.lookback}-day lookback; your report
            uses {modelName(MODELS, c.state.model)}. Data-driven (global) shares out all the range's conversions among the
            channels at once, so one conversion's shares under it need not add up to 100%.
          </p>
          {(j.conversions ?? []).map((cv) => (
            <CreditTable key={cv.conversion.id} cv={cv} number={number} sessions={sessions} />
          ))}
        </>
      )}
    </section>
  );
}

function CreditTable(p: { cv: JourneyConversion; number: Map<string, number>; sessions: JourneySession[] }) {
  const c = useCtx();
  const touches: string[] = [];
  for (const m of p.cv.credits) for (const t of m.touches) if (!touches.includes(t.session)) touches.push(t.session);
  touches.sort((a, b) => (p.number.get(a) ?? 0) - (p.number.get(b) ?? 0));
  const title = `${kindName(p.cv.conversion.kind)} on ${dateTime(p.cv.conversion.at)}`;
  return (
    <div class="table-wrap credit" data-credit={p.cv.conversion.kind}>
      <table>
        <caption>{title}</caption>
        <thead>
          <tr>
            <th scope="col" class="first">
              Touch
            </th>
            {p.cv.credits.map((m) => (
              <th scope="col" key={m.model} class={m.model === c.state.model ? 'current' : undefined} data-model={m.model}>
                {modelName(MODELS, m.model)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {touches.length === 0 ? (
            <tr>
              <td colSpan={p.cv.credits.length + 1} class="empty">
                No touch in the lookback window: unattributed.
              </td>
            </tr>
          ) : (
            touches.map((id) => {
              const s = p.sessions.find((x) => x.id === id);
              return (
                <tr key={id} data-session={id}>
                  <th scope="row" class="first">
                    Session {p.number.get(id) ?? '?'}
                    {s ? ` · ${s.channel}` : ''}
                    <span class="sub">{s ? dateTime(s.started_at) : id}</span>
                  </th>
                  {p.cv.credits.map((m) => {
                    const t = m.touches.find((x) => x.session === id);
                    return (
                      <td key={m.model} data-model={m.model} class={m.model === c.state.model ? 'current' : undefined}>
                        {percent(t ? t.share : 0)}
                      </td>
                    );
                  })}
                </tr>
              );
            })
          )}
        </tbody>
      </table>
    </div>
  );
}
