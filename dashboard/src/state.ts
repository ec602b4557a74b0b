// The dashboard's state lives in the URL's query string (never the key), so that any view
// can be reloaded, bookmarked and shared. Only values that differ from the defaults are
// written; unknown or malformed values fall back to the defaults.

export const VIEWS = ['overview', 'sources', 'funnel', 'compare', 'pages', 'trend', 'leads', 'lead'] as const;
export type View = (typeof VIEWS)[number];

export const MODELS: [string, string][] = [
  ['first_touch', 'First touch'],
  ['last_touch', 'Last touch'],
  ['last_non_direct', 'Last non-direct'],
  ['linear', 'Linear'],
  ['position_based', 'Position-based (U)'],
  ['time_decay', 'Time decay'],
  ['w_shaped', 'W-shaped'],
  ['full_path', 'Full path'],
  ['data_driven', 'Data-driven (Markov)'],
  ['data_driven_global', 'Data-driven (global)'],
];

export const GROUPS: [string, string][] = [
  ['channel', 'Channel'],
  ['source', 'Source'],
  ['medium', 'Medium'],
  ['campaign', 'Campaign'],
  ['landing_page', 'Landing page'],
];

/** The segment dimensions (the report endpoints' filter parameters). */
export const SEGMENTS: [string, string][] = [
  ['country', 'Country'],
  ['device', 'Device'],
  ['channel', 'Channel'],
  ['source', 'Source'],
  ['campaign', 'Campaign'],
  ['landing_page', 'Landing page'],
];

export const PRESETS: [string, string][] = [
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['90d', 'Last 90 days'],
  ['month', 'This month'],
  ['last_month', 'Last month'],
  ['quarter', 'This quarter'],
  ['custom', 'Custom'],
];

export interface State {
  view: View;
  site: string;
  /** Inclusive UTC days, `YYYY-MM-DD`; empty: not chosen yet (the default range applies). */
  from: string;
  to: string;
  preset: string;
  group_by: string;
  model: string;
  model_b: string;
  conversion: string;
  lookback: string;
  half_life: string;
  granularity: string;
  metric: string;
  bots: boolean;
  /** Segment filters: dimension → value. */
  filters: Record<string, string>;
  psort: string;
  porder: string;
  lead: string;
  q: string;
  lsource: string;
  lstage: string;
}

export const DEFAULTS: State = {
  view: 'overview',
  site: '',
  from: '',
  to: '',
  preset: '30d',
  group_by: 'channel',
  model: 'last_non_direct',
  model_b: 'first_touch',
  conversion: 'customer',
  lookback: '90',
  half_life: '7',
  granularity: 'day',
  metric: 'sessions',
  bots: false,
  filters: {},
  psort: 'views',
  porder: 'desc',
  lead: '',
  q: '',
  lsource: '',
  lstage: '',
};

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const oneOf = (v: string | null, list: [string, string][], d: string) =>
  v !== null && list.some(([k]) => k === v) ? v : d;

export function parse(search: string): State {
  const p = new URLSearchParams(search);
  const s: State = { ...DEFAULTS, filters: {} };
  const view = p.get('view');
  if (view && (VIEWS as readonly string[]).includes(view)) s.view = view as View;
  s.site = (p.get('site') ?? '').slice(0, 200);
  const from = p.get('from') ?? '';
  const to = p.get('to') ?? '';
  if (DATE.test(from) && DATE.test(to) && from <= to) {
    s.from = from;
    s.to = to;
    s.preset = 'custom';
  }
  s.preset = oneOf(p.get('preset'), PRESETS, s.preset);
  s.group_by = oneOf(p.get('group_by'), GROUPS, DEFAULTS.group_by);
  s.model = oneOf(p.get('model'), MODELS, DEFAULTS.model);
  s.model_b = oneOf(p.get('model_b'), MODELS, DEFAULTS.model_b);
  const conversion = p.get('conversion');
  if (conversion && conversion.length <= 64) s.conversion = conversion.toLowerCase();
  const lookback = Number(p.get('lookback_days'));
  if (Number.isInteger(lookback) && lookback >= 1 && lookback <= 3650) s.lookback = String(lookback);
  const half = Number(p.get('half_life_days'));
  if (Number.isFinite(half) && half > 0 && half <= 3650) s.half_life = String(half);
  s.granularity = p.get('granularity') === 'week' ? 'week' : 'day';
  s.metric = oneOf(p.get('metric'), TREND_METRICS.map(([k, l]) => [k, l]), DEFAULTS.metric);
  s.bots = p.get('include_bots') === 'true';
  for (const [dim] of SEGMENTS) {
    const v = p.get(dim);
    if (v) s.filters[dim] = v.slice(0, 500);
  }
  s.psort = p.get('sort') ?? DEFAULTS.psort;
  s.porder = p.get('order') === 'asc' ? 'asc' : 'desc';
  s.lead = (p.get('lead') ?? '').slice(0, 500);
  s.q = (p.get('q') ?? '').slice(0, 200);
  s.lsource = (p.get('lead_source') ?? '').slice(0, 200);
  s.lstage = (p.get('stage') ?? '').slice(0, 64);
  return s;
}

export function serialize(s: State): string {
  const p = new URLSearchParams();
  const put = (k: string, v: string, d: string) => {
    if (v && v !== d) p.set(k, v);
  };
  put('site', s.site, '');
  put('view', s.view, DEFAULTS.view);
  if (s.preset === 'custom') {
    put('from', s.from, '');
    put('to', s.to, '');
  } else {
    put('preset', s.preset, DEFAULTS.preset);
  }
  put('group_by', s.group_by, DEFAULTS.group_by);
  put('model', s.model, DEFAULTS.model);
  put('model_b', s.model_b, DEFAULTS.model_b);
  put('conversion', s.conversion, DEFAULTS.conversion);
  put('lookback_days', s.lookback, DEFAULTS.lookback);
  put('half_life_days', s.half_life, DEFAULTS.half_life);
  put('granularity', s.granularity, DEFAULTS.granularity);
  put('metric', s.metric, DEFAULTS.metric);
  if (s.bots) p.set('include_bots', 'true');
  for (const [dim] of SEGMENTS) {
    const v = s.filters[dim];
    if (v) p.set(dim, v);
  }
  put('sort', s.psort, DEFAULTS.psort);
  put('order', s.porder, DEFAULTS.porder);
  put('lead', s.lead, '');
  put('q', s.q, '');
  put('lead_source', s.lsource, '');
  put('stage', s.lstage, '');
  const q = p.toString();
  return q ? `?${q}` : '';
}

export const TREND_METRICS: [string, string, 'count' | 'money' | 'ratio'][] = [
  ['sessions', 'Sessions', 'count'],
  ['visitors', 'Visitors', 'count'],
  ['pageviews', 'Page views', 'count'],
  ['leads', 'Leads', 'count'],
  ['customers', 'Customers', 'count'],
  ['revenue', 'Revenue', 'money'],
  ['spend', 'Spend', 'money'],
];

// ---- dates (UTC days, as the API counts them) ------------------------------------------

export const DAY_MS = 86_400_000;

export function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function dayMs(date: string): number {
  return Date.parse(`${date}T00:00:00Z`);
}

export function addDays(date: string, n: number): string {
  return day(dayMs(date) + n * DAY_MS);
}

/** The inclusive day range of a preset, as of `now`. */
export function presetRange(preset: string, now: number): [string, string] {
  const today = day(now);
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  switch (preset) {
    case '7d':
      return [addDays(today, -6), today];
    case '90d':
      return [addDays(today, -89), today];
    case 'month':
      return [day(Date.UTC(y, m, 1)), today];
    case 'last_month':
      return [day(Date.UTC(y, m - 1, 1)), day(Date.UTC(y, m, 0))];
    case 'quarter':
      return [day(Date.UTC(y, m - (m % 3), 1)), today];
    default:
      return [addDays(today, -29), today];
  }
}

/** The number of days of an inclusive range. */
export function rangeDays(from: string, to: string): number {
  return Math.round((dayMs(to) - dayMs(from)) / DAY_MS) + 1;
}

/** The period of the same length just before `[from, to]`. */
export function previousRange(from: string, to: string): [string, string] {
  const n = rangeDays(from, to);
  return [addDays(from, -n), addDays(from, -1)];
}
