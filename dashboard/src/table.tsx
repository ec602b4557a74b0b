// One table component for every report: formatted cells, a pinned first column and a
// visible scroll hint at phone width, sorting by any column (aria-sort), clickable row
// labels (drill-down), footer rows, and the CSV export of exactly what it shows.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { csv, download, type Cell } from './csv';
import { count, DASH, isNum, money, moneyValue, percent } from './format';

export type Kind = 'text' | 'count' | 'money' | 'percent';

export interface Column<R> {
  key: string;
  label: string;
  kind: Kind;
  value: (r: R) => number | string | null;
  /** Extra content after the value (a badge). */
  extra?: (r: R) => ComponentChildren;
  title?: string;
}

export interface TableProps<R> {
  id: string;
  caption: string;
  columns: Column<R>[];
  rows: R[];
  rowKey: (r: R) => string;
  currency: string;
  /** Footer rows (totals, unallocated spend), shown after the body. */
  footer?: { key: string; row: R; className?: string }[];
  /** Makes the first cell a button. */
  onRowClick?: (r: R) => void;
  rowClickLabel?: (r: R) => string;
  rowClass?: (r: R) => string | undefined;
  /** Sorting by clicking a header; `sort` is the column key, `order` asc/desc. */
  sort?: { key: string; order: 'asc' | 'desc'; onSort: (key: string, order: 'asc' | 'desc') => void };
  csvName: string;
  empty?: string;
}

export function show(kind: Kind, v: number | string | null, currency: string): string {
  if (kind === 'text') return v === null || v === '' ? DASH : String(v);
  const n = typeof v === 'number' ? v : null;
  if (kind === 'money') return money(n, currency);
  if (kind === 'percent') return percent(n);
  return count(n);
}

function csvValue(kind: Kind, v: number | string | null, currency: string): Cell {
  if (kind === 'text') return v === null ? '' : String(v);
  if (!isNum(v)) return null;
  if (kind === 'money') return moneyValue(v, currency);
  return v;
}

export function sortRows<R>(rows: R[], col: Column<R> | undefined, order: 'asc' | 'desc'): R[] {
  if (!col) return rows;
  const dir = order === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = col.value(a);
    const y = col.value(b);
    if (x === y) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
    return String(x).localeCompare(String(y)) * dir;
  });
}

export function Table<R>(p: TableProps<R>) {
  const wrap = useRef<HTMLDivElement>(null);
  const [overflow, setOverflow] = useState(false);
  useEffect(() => {
    const el = wrap.current;
    if (!el) return undefined;
    const check = () => setOverflow(el.scrollWidth > el.clientWidth + 1);
    check();
    const ro = new ResizeObserver(check);
    ro.observe(el);
    return () => ro.disconnect();
  }, [p.rows, p.columns]);

  const sortCol = p.sort ? p.columns.find((c) => c.key === p.sort?.key) : undefined;
  const rows = p.sort ? sortRows(p.rows, sortCol, p.sort.order) : p.rows;

  const exportCsv = () => {
    const header = p.columns.map((c) => (c.kind === 'money' ? `${c.label} (${p.currency})` : c.label));
    const body = [...rows, ...(p.footer ?? []).map((f) => f.row)].map((r) =>
      p.columns.map((c) => csvValue(c.kind, c.value(r), p.currency)),
    );
    download(p.csvName, csv(header, body));
  };

  const cells = (r: R, first: 'th' | 'td', clickable: boolean) =>
    p.columns.map((c, i) => {
      const text = show(c.kind, c.value(r), p.currency);
      if (i === 0) {
        const Tag = first;
        return (
          <Tag scope={first === 'th' ? 'row' : undefined} class="first" data-col={c.key} key={c.key}>
            {clickable && p.onRowClick ? (
              <button
                type="button"
                class="link"
                aria-label={p.rowClickLabel?.(r)}
                onClick={() => p.onRowClick?.(r)}
              >
                {text}
              </button>
            ) : (
              <span title={text}>{text}</span>
            )}
            {c.extra?.(r)}
          </Tag>
        );
      }
      return (
        <td data-col={c.key} key={c.key} class={c.kind === 'text' ? 'text' : undefined}>
          {text}
          {c.extra?.(r)}
        </td>
      );
    });

  return (
    <div class="table-block">
      <div class="table-tools">
        {overflow && (
          <span class="scroll-hint" aria-hidden="true">
            Scroll sideways for more columns →
          </span>
        )}
        <button type="button" class="secondary" id={`${p.id}-csv`} onClick={exportCsv} disabled={!p.rows.length}>
          Export CSV
        </button>
      </div>
      <div class={`table-wrap${overflow ? ' overflowing' : ''}`} ref={wrap} tabIndex={overflow ? 0 : undefined} role={overflow ? 'region' : undefined} aria-label={overflow ? `${p.caption} (scrolls sideways)` : undefined}>
        <table id={p.id}>
          <caption class="visually-hidden">{p.caption}</caption>
          <thead>
            <tr>
              {p.columns.map((c, i) => {
                const sorted = p.sort && p.sort.key === c.key;
                const ariaSort = sorted ? (p.sort?.order === 'asc' ? 'ascending' : 'descending') : p.sort ? 'none' : undefined;
                return (
                  <th scope="col" key={c.key} class={i === 0 ? 'first' : c.kind === 'text' ? 'text' : undefined} aria-sort={ariaSort} title={c.title}>
                    {p.sort ? (
                      <button
                        type="button"
                        class="sort"
                        data-sort={c.key}
                        onClick={() => {
                          const next = sorted ? (p.sort?.order === 'desc' ? 'asc' : 'desc') : c.kind === 'text' ? 'asc' : 'desc';
                          p.sort?.onSort(c.key, next);
                        }}
                      >
                        {c.label}
                        <span aria-hidden="true" class="arrow">
                          {sorted ? (p.sort?.order === 'asc' ? ' ▲' : ' ▼') : ''}
                        </span>
                      </button>
                    ) : (
                      c.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr>
                <td colSpan={p.columns.length} class="empty">
                  {p.empty ?? 'Nothing in this range.'}
                </td>
              </tr>
            ) : (
              rows.map((r) => (
                <tr key={p.rowKey(r)} data-key={p.rowKey(r)} class={p.rowClass?.(r)}>
                  {cells(r, 'th', true)}
                </tr>
              ))
            )}
          </tbody>
          {p.footer && p.footer.length > 0 && (
            <tfoot>
              {p.footer.map((f) => (
                <tr key={f.key} data-key={f.key} class={f.className}>
                  {cells(f.row, 'th', false)}
                </tr>
              ))}
            </tfoot>
          )}
        </table>
      </div>
    </div>
  );
}
