// The JSON API, read with the site's read key (kept in this tab's sessionStorage, sent only
// in the Authorization header). The dashboard can do nothing a curl with the same key
// cannot: it has no other source of data.

export interface Creds {
  site: string;
  key: string;
}

const STORE = 'closeloop.dashboard';

export function loadCreds(): Creds | null {
  try {
    const v: unknown = JSON.parse(sessionStorage.getItem(STORE) || 'null');
    if (v && typeof v === 'object') {
      const { site, key } = v as Record<string, unknown>;
      if (typeof site === 'string' && typeof key === 'string' && site && key) return { site, key };
    }
  } catch {
    /* storage blocked or corrupt: ask again */
  }
  return null;
}

export function saveCreds(c: Creds): void {
  try {
    sessionStorage.setItem(STORE, JSON.stringify(c));
  } catch {
    /* memory only */
  }
}

export function clearCreds(): void {
  try {
    sessionStorage.removeItem(STORE);
  } catch {
    /* nothing stored */
  }
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | undefined>;

/** GETs `/v1/sites/{site}/{path}?params`; rejects with an [`ApiError`]. */
export async function get<T>(creds: Creds, path: string, params: Params, signal?: AbortSignal): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const url = `/v1/sites/${encodeURIComponent(creds.site)}/${path}?${q.toString()}`;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { Authorization: `Bearer ${creds.key}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new ApiError(0, 'network', `Could not reach the API (${(e as Error).message}).`);
  }
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = (body && typeof body === 'object' && (body as { error?: unknown }).error) || {};
    const e = err as { code?: unknown; message?: unknown };
    throw new ApiError(res.status, String(e.code ?? `http_${res.status}`), String(e.message ?? res.statusText));
  }
  if (!body || typeof body !== 'object') throw new ApiError(res.status, 'bad_body', 'The API answered with something that is not JSON.');
  return body as T;
}

export function describe(err: unknown): string {
  if (!(err instanceof ApiError)) return `Something went wrong: ${(err as Error)?.message ?? err}`;
  if (err.status === 401 || err.status === 403) {
    return `Access denied — check the read key and the site id. (${err.status} ${err.code}: ${err.message})`;
  }
  if (err.status === 0) return err.message;
  return `The API refused the request (${err.status} ${err.code}): ${err.message}`;
}

// ---- the answers' shapes (docs/openapi.json) -------------------------------------------

export interface SourceRow {
  key: string;
  visitors: number;
  sessions: number;
  pageviews: number;
  leads: number;
  customers: number;
  revenue: number;
  conversions: number;
  conversion_revenue: number;
  spend: number | null;
  cac: number | null;
  revenue_per_customer: number | null;
  roi: number | null;
  channel?: string;
  source?: string;
  medium?: string;
  campaign?: string | null;
}

export interface SpendKey {
  channel: string;
  source: string | null;
  campaign: string | null;
  spend: number;
}

export interface SpendReconciliation {
  rows: number;
  unallocated: number;
  total: number;
  unallocated_by: SpendKey[];
  basis: 'exact' | 'estimated';
  not_estimated: number;
  not_estimated_by: SpendKey[];
}

export interface SourcesReport {
  currency: string;
  rows: SourceRow[];
  totals: SourceRow;
  spend_reconciliation?: SpendReconciliation;
}

export interface PageRow {
  path: string;
  views: number;
  entrances: number;
  exits?: number;
  assisted_leads: number;
  assisted_customers: number;
  assisted_revenue: number;
  direct_conversions: number;
}

export interface PagesReport {
  currency: string;
  rows: PageRow[];
}

export interface TimeseriesPoint {
  bucket: string;
  from: string;
  to: string;
  figures: SourceRow;
}

export interface TimeseriesReport {
  currency: string;
  granularity: 'day' | 'week';
  points: TimeseriesPoint[];
}

export interface Touch {
  channel: string;
  source: string;
  medium: string;
  campaign?: string;
}

export interface LeadSummary {
  lead: string;
  email: string;
  name: string | null;
  company: string | null;
  first_seen: string;
  visitors: number;
  first_touch: Touch | null;
  latest_touch: Touch | null;
  customer: boolean;
  revenue: number;
  stages?: string[];
}

export interface LeadsList {
  leads: LeadSummary[];
  next_cursor: string | null;
}

export interface JourneySession {
  id: string;
  visitor: string;
  started_at: string;
  channel: string;
  source: string;
  medium: string;
  campaign?: string | null;
  landing_page: string;
  pageviews: number;
  is_bot: boolean;
  country?: string | null;
  device?: string | null;
}

export interface TouchCredit {
  session: string;
  channel: string;
  share: number;
  revenue: number;
}

export interface JourneyConversion {
  conversion: {
    id: string;
    kind: string;
    at: string;
    revenue: number;
    page?: string | null;
    session?: string | null;
  };
  credits: { model: string; touches: TouchCredit[] }[];
}

export interface Journey {
  lead: string;
  email?: string;
  visitors: string[];
  sessions: JourneySession[];
  pages: { path: string; at: string; session: string; visitor: string }[];
  conversions: JourneyConversion[];
}

export interface Facets {
  currency: string;
  data: {
    sessions: number;
    first_session: string | null;
    last_session: string | null;
    first_conversion: string | null;
    last_conversion: string | null;
  };
  conversion_kinds: { kind: string; conversions: number; first: string; last: string }[];
  values: Record<string, { value: string; sessions: number }[]>;
}
