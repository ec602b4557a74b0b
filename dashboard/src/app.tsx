// The shell shared by every view: the context (credentials, URL state, resolved range,
// facets), the data-loading hook, and small pieces (status line, page heading).

import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { describe, get, type Creds, type Facets, type Params } from './api';
import { addDays, type State } from './state';

export interface Ctx {
  creds: Creds;
  state: State;
  /** Updates the state (and the URL); `push` makes a history entry (a new view). */
  set: (patch: Partial<State>, push?: boolean) => void;
  /** The resolved inclusive day range. */
  from: string;
  to: string;
  facets: Facets | null;
  currency: string;
}

export const AppContext = createContext<Ctx | null>(null);

export function useCtx(): Ctx {
  const c = useContext(AppContext);
  if (!c) throw new Error('no context');
  return c;
}

/** The parameters every report shares: range, lookback, half-life, segment, bots. */
export function baseParams(c: Ctx, range?: [string, string]): Params {
  const [from, to] = range ?? [c.from, c.to];
  const p: Params = {
    from,
    to: addDays(to, 1),
    lookback_days: c.state.lookback,
    half_life_days: c.state.half_life,
    include_bots: c.state.bots ? 'true' : undefined,
  };
  for (const [k, v] of Object.entries(c.state.filters)) p[k] = v;
  return p;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  /** What the data (or error) answers: the path and parameters, as `data-for` shows. */
  key?: string;
}

/** Loads `path` with `params` (again whenever they change); older answers are dropped. */
export function useApi<T>(path: string | null, params: Params): Loaded<T> {
  const { creds } = useCtx();
  const [s, setS] = useState<Loaded<T>>({ data: null, error: null, loading: true });
  const key = `${path}?${JSON.stringify(params)}`;
  useEffect(() => {
    if (!path) {
      setS({ data: null, error: null, loading: false });
      return undefined;
    }
    const ac = new AbortController();
    setS((old) => ({ data: old.data, error: null, loading: true }));
    get<T>(creds, path, params, ac.signal).then(
      (data) => {
        if (!ac.signal.aborted) setS({ data, error: null, loading: false, key });
      },
      (err: unknown) => {
        if (!ac.signal.aborted) setS({ data: null, error: describe(err), loading: false, key });
      },
    );
    return () => ac.abort();
  }, [key, creds.key, creds.site]);
  return s;
}

/** Loads several reports at once (the same path with different parameters). */
export function useApiMany<T>(path: string, list: Params[]): Loaded<T[]> {
  const { creds } = useCtx();
  const [s, setS] = useState<Loaded<T[]>>({ data: null, error: null, loading: true });
  const key = `${path}?${JSON.stringify(list)}`;
  useEffect(() => {
    const ac = new AbortController();
    setS((old) => ({ data: old.data, error: null, loading: true }));
    Promise.all(list.map((p) => get<T>(creds, path, p, ac.signal))).then(
      (data) => {
        if (!ac.signal.aborted) setS({ data, error: null, loading: false, key });
      },
      (err: unknown) => {
        if (!ac.signal.aborted) setS({ data: null, error: describe(err), loading: false, key });
      },
    );
    return () => ac.abort();
  }, [key, creds.key, creds.site]);
  return s;
}

/** The status line of a section: loading, an error, or a note; `data-state` says which. */
export function Status(p: { id: string; loaded: Loaded<unknown>; empty?: boolean; emptyText?: string; children?: ComponentChildren }) {
  const state = p.loaded.error ? 'error' : p.loaded.loading ? 'loading' : p.empty ? 'empty' : 'ok';
  return (
    <p class={`status ${state}`} id={`${p.id}-status`} data-state={state} data-for={p.loaded.key ?? ''} role="status">
      {p.loaded.error ?? (p.loaded.loading ? 'Loading…' : p.empty ? (p.emptyText ?? 'Nothing in this range.') : p.children)}
    </p>
  );
}

/** A view's heading; it takes focus when the view opens (after sign-in, after a switch). */
export function ViewHeading(p: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus({ preventScroll: true });
  }, []);
  return (
    <h2 id="view-heading" tabIndex={-1} ref={ref}>
      {p.children}
    </h2>
  );
}
