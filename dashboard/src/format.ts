// How figures are written: one place, so that the tables, the cards, the charts and the
// CSV agree. Money arrives in integer minor units of the site's currency.

export const DASH = '—';
const LOCALE = 'en-US';

export const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

const counts = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const fractions = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 });
const percents = new Intl.NumberFormat(LOCALE, { style: 'percent', maximumFractionDigits: 1 });

/** The number of minor units in one unit of `currency` (2 for USD, 0 for JPY). */
export function exponent(currency: string): number {
  try {
    return new Intl.NumberFormat(LOCALE, { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** A count (whole) or a credited count (up to two decimals). */
export function count(v: number | null | undefined): string {
  if (!isNum(v)) return DASH;
  return Number.isInteger(v) ? counts.format(v) : fractions.format(v);
}

/** Money from minor units, cents shown only when there are any. */
export function money(v: number | null | undefined, currency: string): string {
  if (!isNum(v)) return DASH;
  const major = v / 10 ** exponent(currency);
  try {
    return new Intl.NumberFormat(LOCALE, {
      style: 'currency',
      currency,
      trailingZeroDisplay: 'stripIfInteger',
    } as Intl.NumberFormatOptions).format(major);
  } catch {
    return fractions.format(major);
  }
}

/** Money in major units as a plain number (the CSV's form). */
export function moneyValue(v: number | null | undefined, currency: string): number | null {
  if (!isNum(v)) return null;
  const e = exponent(currency);
  return Math.round(v) / 10 ** e;
}

export function percent(v: number | null | undefined): string {
  return isNum(v) ? percents.format(v) : DASH;
}

/** `a / b`, or null when b is 0. */
export function ratio(a: number, b: number): number | null {
  return b > 0 && isNum(a) ? a / b : null;
}

/** The change from `prev` to `cur`, as a ratio (null when there was nothing before). */
export function change(cur: number | null, prev: number | null): number | null {
  if (!isNum(cur) || !isNum(prev) || prev === 0) return null;
  return (cur - prev) / Math.abs(prev);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `2026-09-07` → `Sep 7` (with the year when `year`). */
export function shortDate(iso: string, year = false): string {
  const d = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  if (Number.isNaN(d.getTime())) return iso;
  const s = `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}`;
  return year ? `${s}, ${d.getUTCFullYear()}` : s;
}

/** An RFC 3339 time as `Sep 7, 2026 10:05 UTC`. */
export function dateTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const hh = String(d.getUTCHours()).padStart(2, '0');
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  return `${shortDate(iso, true)} ${hh}:${mm} UTC`;
}

/** The label of a timeseries bucket: a day, or the week that starts on its first day. */
export function bucketLabel(from: string, granularity: string): string {
  return granularity === 'week' ? `Week of ${shortDate(from)}` : shortDate(from);
}

export function modelName(models: [string, string][], m: string): string {
  return models.find(([k]) => k === m)?.[1] ?? m;
}

/** A conversion kind for people: `opportunity` → `Opportunity`. */
export function kindName(kind: string): string {
  if (kind === 'lead') return 'Lead';
  if (kind === 'customer') return 'Customer';
  const k = kind.replace(/[_-]+/g, ' ');
  return k.charAt(0).toUpperCase() + k.slice(1);
}

export function plural(kind: string): string {
  const n = kindName(kind);
  if (/y$/.test(n) && !/[aeiou]y$/.test(n)) return `${n.slice(0, -1)}ies`;
  return /s$/.test(n) ? n : `${n}s`;
}
