// Closeloop dashboard: Preact (MIT, ~4 KB gzip) and Chart.js (MIT), written in TypeScript
// and bundled by esbuild at build time (`cargo xtask build`). It reads only the worker's
// JSON API with the site's read key, which stays in this tab's sessionStorage and travels
// only in the Authorization header. Everything that comes from the API is rendered as
// text (Preact escapes it; nothing here sets HTML).

import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { clearCreds, describe, get, loadCreds, saveCreds, type Creds, type Facets } from './api';
import { AppContext, type Ctx } from './app';
import { shortDate } from './format';
import { addDays, day, DEFAULTS, parse, PRESETS, presetRange, SEGMENTS, serialize, type State, type View } from './state';
import { Compare } from './views/compare';
import { Funnel } from './views/funnel';
import { JourneyView } from './views/journey';
import { Leads } from './views/leads';
import { Overview } from './views/overview';
import { Pages } from './views/pages';
import { Sources } from './views/sources';
import { Trend } from './views/trend';

const NAV: [View, string][] = [
  ['overview', 'Overview'],
  ['sources', 'Sources'],
  ['funnel', 'Funnel'],
  ['compare', 'Compare models'],
  ['pages', 'Pages'],
  ['trend', 'Trend'],
  ['leads', 'Leads'],
];

function SignIn(p: { site: string; onDone: (c: Creds) => void }) {
  const [site, setSite] = useState(p.site);
  const [key, setKey] = useState('');
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);
  return (
    <form
      id="login"
      autocomplete="off"
      onSubmit={(e) => {
        e.preventDefault();
        const c = { site: site.trim(), key: key.trim() };
        if (c.site && c.key) p.onDone(c);
      }}
    >
      <h2>Open a site's reports</h2>
      <p>Enter the site id and its read key. The key stays in this tab only (session storage); it is never put in a URL.</p>
      <label>
        Site id
        <input id="site" ref={p.site ? undefined : first} required spellcheck={false} value={site} onInput={(e) => setSite(e.currentTarget.value)} />
      </label>
      <label>
        Read key
        <input id="key" ref={p.site ? first : undefined} type="password" required spellcheck={false} placeholder="clr_…" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
      </label>
      <button type="submit">Open</button>
    </form>
  );
}

function RangePicker(p: { state: State; from: string; to: string; set: Ctx['set']; onInvalid: (msg: string | null) => void }) {
  const [from, setFrom] = useState(p.from);
  const [to, setTo] = useState(p.to);
  useEffect(() => {
    setFrom(p.from);
    setTo(p.to);
  }, [p.from, p.to]);
  const apply = (f: string, t: string) => {
    if (!f || !t) return p.onInvalid('Choose a start and an end date.');
    if (f > t) return p.onInvalid('The start date is after the end date.');
    p.onInvalid(null);
    p.set({ preset: 'custom', from: f, to: t });
  };
  return (
    <form class="range" onSubmit={(e) => e.preventDefault()} aria-label="Date range">
      <label>
        Range
        <select
          id="preset"
          value={p.state.preset}
          onChange={(e) => {
            const v = e.currentTarget.value;
            p.onInvalid(null);
            if (v === 'custom') p.set({ preset: 'custom', from: p.from, to: p.to });
            else p.set({ preset: v, from: '', to: '' });
          }}
        >
          {PRESETS.map(([k, l]) => (
            <option value={k} key={k}>
              {l}
            </option>
          ))}
        </select>
      </label>
      <label>
        From
        <input id="from" type="date" value={from} onChange={(e) => { setFrom(e.currentTarget.value); apply(e.currentTarget.value, to); }} />
      </label>
      <label>
        To
        <input id="to" type="date" value={to} onChange={(e) => { setTo(e.currentTarget.value); apply(from, e.currentTarget.value); }} />
      </label>
    </form>
  );
}

function SegmentBar(p: { ctx: Ctx }) {
  const c = p.ctx;
  const [dim, setDim] = useState('country');
  const [value, setValue] = useState('');
  const values = c.facets?.values[dim] ?? [];
  const active = Object.entries(c.state.filters);
  return (
    <div class="segments" id="segments">
      <span class="seg-title">Segment</span>
      {active.length === 0 && <span class="muted">everyone</span>}
      <ul class="chips">
        {active.map(([k, v]) => (
          <li key={k} class="chip" data-filter={k}>
            {SEGMENTS.find(([d]) => d === k)?.[1] ?? k}: <span class="chip-value">{v}</span>
            <button
              type="button"
              aria-label={`Remove the segment ${k} ${v}`}
              onClick={() => {
                const f = { ...c.state.filters };
                delete f[k];
                c.set({ filters: f });
              }}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <form
        class="seg-add"
        aria-label="Add a segment"
        onSubmit={(e) => {
          e.preventDefault();
          const v = value.trim();
          if (v) {
            c.set({ filters: { ...c.state.filters, [dim]: v } });
            setValue('');
          }
        }}
      >
        <label>
          <span class="visually-hidden">Dimension</span>
          <select id="seg_dim" value={dim} onChange={(e) => setDim(e.currentTarget.value)}>
            {SEGMENTS.map(([k, l]) => (
              <option value={k} key={k}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span class="visually-hidden">Value</span>
          <input id="seg_value" list="seg-values" value={value} placeholder="value" spellcheck={false} autocomplete="off" onInput={(e) => setValue(e.currentTarget.value)} />
          <datalist id="seg-values">
            {values.map((v) => (
              <option value={v.value} key={v.value} label={`${v.sessions} sessions`} />
            ))}
          </datalist>
        </label>
        <button type="submit" class="secondary">
          Add
        </button>
      </form>
      <label class="bots">
        <input id="bots" type="checkbox" checked={c.state.bots} onChange={(e) => c.set({ bots: e.currentTarget.checked })} />
        Include bots
        <span class="muted">
          {c.state.bots ? ' (bots are counted)' : ' (left out: crawlers, headless and automated browsers)'}
        </span>
      </label>
    </div>
  );
}

function Shell(p: { creds: Creds; state: State; set: Ctx['set']; signOut: () => void }) {
  const { creds, state, set } = p;
  const [extent, setExtent] = useState<{ from: string; to: string; notice: string } | null | 'loading'>('loading');
  const [error, setError] = useState<string | null>(null);
  const [facets, setFacets] = useState<Facets | null>(null);
  const [invalid, setInvalid] = useState<string | null>(null);

  // Where the data is: a default range that holds data when the last 30 days hold none.
  useEffect(() => {
    const ac = new AbortController();
    setExtent('loading');
    get<Facets>(creds, 'reports/facets', {}, ac.signal).then(
      (f) => {
        if (ac.signal.aborted) return;
        setError(null);
        const last = [f.data.last_session, f.data.last_conversion].filter((x): x is string => !!x).sort().pop();
        const today = day(Date.now());
        if (last && last.slice(0, 10) < addDays(today, -29)) {
          const to = last.slice(0, 10);
          setExtent({
            from: addDays(to, -29),
            to,
            notice: `Nothing was recorded in the last 30 days: showing the latest 30 days with data (${shortDate(addDays(to, -29))} – ${shortDate(to, true)}).`,
          });
        } else setExtent(null);
      },
      (e: unknown) => {
        if (!ac.signal.aborted) {
          setError(describe(e));
          setExtent(null);
        }
      },
    );
    return () => ac.abort();
  }, [creds.site, creds.key]);

  const useDefault = state.preset === DEFAULTS.preset && !state.from && extent !== 'loading' && extent !== null;
  const [from, to] =
    state.preset === 'custom' && state.from && state.to
      ? [state.from, state.to]
      : useDefault && typeof extent === 'object' && extent
        ? [extent.from, extent.to]
        : presetRange(state.preset, Date.now());

  useEffect(() => {
    const ac = new AbortController();
    get<Facets>(creds, 'reports/facets', { from, to: addDays(to, 1), include_bots: state.bots ? 'true' : undefined }, ac.signal).then(
      (f) => {
        if (!ac.signal.aborted) setFacets(f);
      },
      () => {},
    );
    return () => ac.abort();
  }, [from, to, state.bots, creds.key]);

  const ctx: Ctx = useMemo(
    () => ({ creds, state, set, from, to, facets, currency: facets?.currency ?? 'USD' }),
    [creds, state, set, from, to, facets],
  );
  const view = state.view;
  const content =
    view === 'sources' ? <Sources /> : view === 'funnel' ? <Funnel /> : view === 'compare' ? <Compare /> : view === 'pages' ? <Pages /> : view === 'trend' ? <Trend /> : view === 'leads' ? <Leads /> : view === 'lead' ? <JourneyView /> : <Overview />;
  useEffect(() => {
    const name = NAV.find(([k]) => k === view)?.[1] ?? 'Lead';
    document.title = `${name} · ${creds.site} — Closeloop`;
  }, [view, creds.site]);
  return (
    <AppContext.Provider value={ctx}>
      <div id="reports">
        <div class="toolbar">
          <RangePicker state={state} from={from} to={to} set={set} onInvalid={setInvalid} />
          <span class="who" id="who">
            Site <strong>{creds.site}</strong>
          </span>
          <button type="button" class="secondary" id="signout" onClick={p.signOut}>
            Change site or key
          </button>
        </div>
        <nav aria-label="Reports" class="tabs">
          <ul>
            {NAV.map(([k, l]) => (
              <li key={k}>
                <a
                  href={serialize({ ...state, view: k })}
                  aria-current={view === k || (k === 'leads' && view === 'lead') ? 'page' : undefined}
                  data-view={k}
                  onClick={(e) => {
                    e.preventDefault();
                    if (view === k) document.getElementById('view-heading')?.focus();
                    else set({ view: k }, true);
                  }}
                >
                  {l}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <SegmentBar ctx={ctx} />
        {typeof extent === 'object' && extent && useDefault && (
          <p class="notice" id="range-notice" role="note">
            {extent.notice}
          </p>
        )}
        {error && (
          <p class="status error" id="shell-status" role="alert">
            {error}
          </p>
        )}
        <main id="main">
          {invalid ? (
            <p class="status error" id="range-error" role="alert">
              {invalid}
            </p>
          ) : extent === 'loading' ? (
            <p class="status loading">Loading…</p>
          ) : error ? null : (
            <div key={view}>{content}</div>
          )}
        </main>
      </div>
    </AppContext.Provider>
  );
}

function Root() {
  const [state, setState] = useState<State>(() => parse(location.search));
  const [creds, setCreds] = useState<Creds | null>(() => loadCreds());
  const stateRef = useRef(state);
  stateRef.current = state;

  useEffect(() => {
    const on = () => setState(parse(location.search));
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);

  const set = useMemo(
    () => (patch: Partial<State>, push = false) => {
      const next = { ...stateRef.current, ...patch };
      stateRef.current = next;
      const url = `${location.pathname}${serialize(next)}`;
      if (push) history.pushState(null, '', url);
      else history.replaceState(null, '', url);
      setState(next);
      if (push) window.scrollTo(0, 0);
    },
    [],
  );

  const signedIn = creds && (!state.site || state.site === creds.site);
  useEffect(() => {
    if (signedIn && creds && state.site !== creds.site) set({ site: creds.site });
  }, [signedIn, creds?.site]);

  return (
    <>
      <header class="top">
        <h1>
          <span class="logo" aria-hidden="true">◎</span> Closeloop
        </h1>
      </header>
      {signedIn && creds ? (
        <Shell
          creds={creds}
          state={state}
          set={set}
          signOut={() => {
            clearCreds();
            setCreds(null);
          }}
        />
      ) : (
        <div class="signin-wrap">
          <SignIn
            site={state.site || creds?.site || ''}
            onDone={(c) => {
              saveCreds(c);
              setCreds(c);
              set({ site: c.site });
            }}
          />
        </div>
      )}
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<Root />, root);
