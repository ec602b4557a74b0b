// Closeloop dashboard: plain JavaScript, no dependencies, no build step.
//
// It reads the worker's query API (/v1/sites/{site}/reports/...) with the site's read key,
// which stays in this tab's sessionStorage and travels only in the Authorization header.
// Everything that comes from the API is written with textContent or SVG attributes, never
// as HTML: campaign names and page paths are chosen by visitors.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const STORE = 'closeloop.dashboard';
  const DAY_MS = 86400000;
  const SVG = 'http://www.w3.org/2000/svg';
  const PAGE_ROWS = 100;

  // The sources table's figure columns: [field, how to show it].
  const SOURCE_COLUMNS = [
    ['visitors', 'number'], ['sessions', 'number'], ['leads', 'number'],
    ['customers', 'number'], ['revenue', 'money'], ['spend', 'money'], ['cac', 'money'],
    ['revenue_per_customer', 'money'], ['roi', 'percent'],
  ];
  const PAGE_COLUMNS = [
    ['views', 'number'], ['entrances', 'number'], ['assisted_leads', 'number'],
    ['assisted_customers', 'number'], ['assisted_revenue', 'money'],
    ['direct_conversions', 'number'],
  ];
  const GROUP_NAMES = {
    channel: 'Channel', source: 'Source', medium: 'Medium', campaign: 'Campaign',
    landing_page: 'Landing page',
  };

  // ---- credentials (sessionStorage only) -------------------------------------------------

  function loadCreds() {
    try {
      const v = JSON.parse(sessionStorage.getItem(STORE) || 'null');
      if (v && typeof v.site === 'string' && typeof v.key === 'string' && v.site && v.key) {
        return v;
      }
    } catch (_) { /* storage blocked or corrupt: ask again */ }
    return null;
  }

  function saveCreds(creds) {
    try { sessionStorage.setItem(STORE, JSON.stringify(creds)); } catch (_) { /* memory only */ }
  }

  function clearCreds() {
    try { sessionStorage.removeItem(STORE); } catch (_) { /* nothing stored */ }
  }

  // ---- the API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(creds, path, params) {
    const query = new URLSearchParams(params).toString();
    const url = `/v1/sites/${encodeURIComponent(creds.site)}/${path}?${query}`;
    let res;
    try {
      res = await fetch(url, {
        headers: { Authorization: `Bearer ${creds.key}`, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw new ApiError(0, 'network', `Could not reach the API (${e.message}).`);
    }
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    if (!res.ok) {
      const e = (body && typeof body.error === 'object' && body.error) || {};
      throw new ApiError(res.status, String(e.code || `http_${res.status}`),
        String(e.message || res.statusText || 'request failed'));
    }
    if (!body || typeof body !== 'object') {
      throw new ApiError(res.status, 'bad_body', 'The API answered with something that is not JSON.');
    }
    return body;
  }

  // A 404 that is not about the site or a lead: the endpoint is not built yet.
  function notBuilt(err) {
    return err instanceof ApiError && err.status === 404 && err.code !== 'unknown_site';
  }

  function describe(err) {
    if (!(err instanceof ApiError)) return `Something went wrong: ${err && err.message}`;
    if (err.status === 401 || err.status === 403) {
      return `Access denied — check the read key and the site id. (${err.status} ${err.code}: ${err.message})`;
    }
    if (err.status === 0) return err.message;
    return `The API refused the request (${err.status} ${err.code}): ${err.message}`;
  }

  // ---- formatting ------------------------------------------------------------------------

  const numberFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const percentFmt = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 });
  const DASH = '—';

  function isNum(v) { return typeof v === 'number' && Number.isFinite(v); }

  // Money arrives in integer minor units of `currency` (cents for USD).
  function money(v, currency) {
    if (!isNum(v)) return DASH;
    if (typeof currency === 'string' && currency) {
      try {
        const f = new Intl.NumberFormat(undefined, { style: 'currency', currency });
        return f.format(v / 10 ** f.resolvedOptions().maximumFractionDigits);
      } catch (_) { /* unknown currency code: plain number below */ }
    }
    return numberFmt.format(v / 100);
  }

  function show(v, kind, currency) {
    if (kind === 'money') return money(v, currency);
    if (!isNum(v)) return DASH;
    return kind === 'percent' ? percentFmt.format(v) : numberFmt.format(v);
  }

  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- dates (UTC days, as the API counts them) ------------------------------------------

  function day(ms) { return new Date(ms).toISOString().slice(0, 10); }

  function nextDay(date) {
    const ms = Date.parse(`${date}T00:00:00Z`);
    return Number.isFinite(ms) ? day(ms + DAY_MS) : '';
  }

  // ---- sections --------------------------------------------------------------------------

  function setState(name, state, message) {
    $(`${name}-section`).dataset.state = state;
    const status = $(`${name}-status`);
    status.textContent = message || '';
    status.className = `status ${state}`;
  }

  function query() {
    const from = $('from').value;
    const to = $('to').value;
    if (!from || !to) return { error: 'Choose a start and an end date.' };
    if (from > to) return { error: 'The start date is after the end date.' };
    const lookback = Number($('lookback').value);
    if (!Number.isInteger(lookback) || lookback < 1 || lookback > 3650) {
      return { error: 'The lookback is a whole number of days from 1 to 3650.' };
    }
    const p = { from, to: nextDay(to), lookback_days: String(lookback) };
    const dim = $('filter_dim').value;
    const value = $('filter_value').value.trim();
    if (dim && value) p[dim] = value;
    return { params: p };
  }

  function rowLabel(row, groupBy) {
    if (typeof row.key === 'string') return row.key;
    const v = row[groupBy];
    if (typeof v === 'string') return v;
    return v === null ? '(not set)' : DASH;
  }

  function sourceRow(row, label, currency, tag) {
    const tr = el('tr', undefined, { 'data-key': label });
    tr.append(el(tag, label, { scope: 'row' }));
    for (const [field, kind] of SOURCE_COLUMNS) {
      tr.append(el(tag, show(row[field], kind, currency), { 'data-col': field }));
    }
    return tr;
  }

  async function loadSources(creds, base, generation) {
    const groupBy = $('group_by').value;
    const params = { ...base, group_by: groupBy, model: $('model').value };
    $('sources-key').textContent = GROUP_NAMES[groupBy] || groupBy;
    const tbody = $('sources').tBodies[0];
    const tfoot = $('sources').tFoot;
    setState('sources', 'loading', 'Loading…');
    let report;
    try {
      report = await api(creds, 'reports/sources', params);
    } catch (err) {
      if (generation !== latest.sources) return;
      tbody.replaceChildren();
      tfoot.replaceChildren();
      setState('sources', 'error', describe(err));
      return;
    }
    if (generation !== latest.sources) return;
    const rows = Array.isArray(report.rows) ? report.rows : [];
    tbody.replaceChildren(...rows.map((r) => sourceRow(r, rowLabel(r, groupBy), report.currency, 'td')));
    tfoot.replaceChildren();
    if (report.totals && typeof report.totals === 'object') {
      tfoot.append(sourceRow(report.totals, 'Total', report.currency, 'td'));
    }
    const model = (report.query && report.query.model) || report.model || params.model;
    const option = [...$('model').options].find((o) => o.value === model);
    setState('sources', rows.length ? 'ok' : 'empty',
      rows.length ? `Credit by the ${option ? option.text : model} model.` : 'Nothing in this range.');
  }

  async function loadPages(creds, base, generation) {
    const tbody = $('pages').tBodies[0];
    setState('pages', 'loading', 'Loading…');
    let report;
    try {
      report = await api(creds, 'reports/pages', base);
    } catch (err) {
      if (generation !== latest.pages) return;
      tbody.replaceChildren();
      if (notBuilt(err)) setState('pages', 'unavailable', 'The pages report is not available on this worker yet.');
      else setState('pages', 'error', describe(err));
      return;
    }
    if (generation !== latest.pages) return;
    const rows = Array.isArray(report.rows) ? report.rows : [];
    tbody.replaceChildren(...rows.slice(0, PAGE_ROWS).map((r) => {
      const path = typeof r.path === 'string' ? r.path : DASH;
      const tr = el('tr', undefined, { 'data-key': path });
      tr.append(el('td', path));
      for (const [field, kind] of PAGE_COLUMNS) {
        tr.append(el('td', show(r[field], kind, report.currency), { 'data-col': field }));
      }
      return tr;
    }));
    const more = rows.length > PAGE_ROWS ? ` Showing the first ${PAGE_ROWS} of ${rows.length}.` : '';
    setState('pages', rows.length ? 'ok' : 'empty', rows.length ? more.trim() : 'No page views in this range.');
  }

  async function loadTimeseries(creds, base, generation) {
    const chart = $('chart');
    setState('timeseries', 'loading', 'Loading…');
    let report;
    try {
      report = await api(creds, 'reports/timeseries',
        { ...base, model: $('model').value, granularity: $('granularity').value });
    } catch (err) {
      if (generation !== latest.timeseries) return;
      chart.replaceChildren();
      if (notBuilt(err)) setState('timeseries', 'unavailable', 'The timeseries report is not available on this worker yet.');
      else setState('timeseries', 'error', describe(err));
      return;
    }
    if (generation !== latest.timeseries) return;
    const points = Array.isArray(report.points) ? report.points : [];
    const metric = $('ts_metric').value;
    const kind = metric === 'revenue' ? 'money' : 'number';
    const data = points.map((p) => ({
      label: typeof p.bucket === 'string' ? p.bucket : '',
      value: p.figures && isNum(p.figures[metric]) ? p.figures[metric] : 0,
    }));
    chart.replaceChildren();
    if (!data.length) {
      setState('timeseries', 'empty', 'Nothing in this range.');
      return;
    }
    chart.append(barChart(data, (v) => show(v, kind, report.currency), $('ts_metric').selectedOptions[0].text));
    setState('timeseries', 'ok', '');
  }

  // A bar chart as inline SVG: bars, four grid lines with values, some bucket labels.
  function barChart(data, fmt, title) {
    const W = 760, H = 240, L = 70, R = 10, T = 10, B = 40;
    const plotW = W - L - R, plotH = H - T - B;
    const max = Math.max(...data.map((d) => d.value), 0);
    const top = max > 0 ? niceCeil(max) : 1;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart' });
    root.append(svg('title', {}, `${title} by ${$('granularity').value}`));
    for (let i = 0; i <= 4; i += 1) {
      const y = T + plotH - (plotH * i) / 4;
      root.append(svg('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
      root.append(svg('text', { x: L - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, fmt((top * i) / 4)));
    }
    const step = plotW / data.length;
    const every = Math.max(1, Math.ceil(data.length / 8));
    data.forEach((d, i) => {
      const h = (plotH * d.value) / top;
      const bar = svg('rect', {
        x: L + i * step + step * 0.1, y: T + plotH - h,
        width: Math.max(1, step * 0.8), height: h, class: 'bar', 'data-bucket': d.label,
      });
      bar.append(svg('title', {}, `${d.label}: ${fmt(d.value)}`));
      root.append(bar);
      if (i % every === 0) {
        root.append(svg('text', { x: L + i * step + step / 2, y: H - B + 16, class: 'axis', 'text-anchor': 'middle' }, d.label));
      }
    });
    return root;
  }

  function niceCeil(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- wiring ----------------------------------------------------------------------------

  // The newest request of each section: older answers that arrive late are dropped.
  const latest = { sources: 0, pages: 0, timeseries: 0 };

  function refresh(sections) {
    const creds = loadCreds();
    if (!creds) return;
    const q = query();
    for (const name of sections) {
      latest[name] += 1;
      if (q.error) setState(name, 'error', q.error);
      else LOADERS[name](creds, q.params, latest[name]);
    }
  }

  const LOADERS = { sources: loadSources, pages: loadPages, timeseries: loadTimeseries };
  const ALL = ['sources', 'timeseries', 'pages'];

  function showReports(creds) {
    $('login').hidden = true;
    $('reports').hidden = false;
    $('who').hidden = false;
    $('who').textContent = `Site: ${creds.site}`;
    $('signout').hidden = false;
    refresh(ALL);
  }

  function showLogin() {
    $('reports').hidden = true;
    $('who').hidden = true;
    $('signout').hidden = true;
    $('login').hidden = false;
    $('key').value = '';
    $('site').focus();
  }

  function init() {
    const today = Date.now();
    $('to').value = day(today);
    $('from').value = day(today - 29 * DAY_MS);
    $('login').addEventListener('submit', (e) => {
      e.preventDefault();
      const creds = { site: $('site').value.trim(), key: $('key').value.trim() };
      if (!creds.site || !creds.key) return;
      saveCreds(creds);
      $('key').value = '';
      showReports(creds);
    });
    $('signout').addEventListener('click', () => {
      clearCreds();
      showLogin();
    });
    $('query').addEventListener('submit', (e) => {
      e.preventDefault();
      refresh(ALL);
    });
    $('group_by').addEventListener('change', () => refresh(['sources']));
    $('model').addEventListener('change', () => refresh(['sources', 'timeseries']));
    for (const id of ['ts_metric', 'granularity']) {
      $(id).addEventListener('change', () => refresh(['timeseries']));
    }
    const creds = loadCreds();
    if (creds) {
      $('site').value = creds.site;
      showReports(creds);
    } else {
      showLogin();
    }
  }

  init();
})();
