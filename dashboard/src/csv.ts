// CSV export of the table in view (RFC 4180). Text that visitors or the CRM chose (a
// campaign, a page path, an email) may start with a character a spreadsheet reads as a
// formula: such a cell is prefixed with an apostrophe, as OWASP's "CSV injection" advice
// says, so `=HYPERLINK(...)` stays text. Numbers the dashboard computed are written as
// plain numbers.

export type Cell = string | number | null;

const FORMULA = /^[=+\-@\t\r]/;

/** One cell: numbers as they are, text neutralised and quoted when needed. */
export function cell(v: Cell): string {
  if (v === null) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(Math.round(v * 1e6) / 1e6) : '';
  const text = FORMULA.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csv(header: string[], rows: Cell[][]): string {
  return [header.map(cell), ...rows.map((r) => r.map(cell))].map((r) => r.join(',')).join('\r\n') + '\r\n';
}

/** Offers `text` as a download named `name`. */
export function download(name: string, text: string): void {
  const blob = new Blob([`\ufeff${text}`], { type: 'text/csv;charset=utf-8' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
