// Closeloop loader: t.js. `cargo xtask build` minifies it with esbuild and defines
// WASM_PATH (the content-hashed wasm file, relative to this script's URL).
//
// It reads the tag, installs `window.closeloop` (calls made before the wasm is
// ready are queued and replayed), patches history and form.submit, forwards page
// events to the wasm, and gives the wasm its way to the page: a table of values
// (H) and a dozen generic imports over it (see tracker/src/js.rs, the other half of
// this contract). Every call into the tracker is wrapped: nothing the tracker does
// can throw into the site.
(function () {
  var w = window, d = document, h = w.history;
  var s = d.currentScript || d.querySelector('script[data-site]');
  if (!s || (w.closeloop && w.closeloop._cl)) return;
  // Marks for the bench (xtask/src/bench_tracker.rs): the loader's run, start()
  // (the budget: until the first event is queued), settle() (deferred work) and
  // the early storage open (below).
  var P = w.performance, mk = function (n) { try { P.mark('closeloop:' + n); } catch (e) {} };
  mk('loader');
  var a = function (n) { return s.getAttribute(n) || ''; };
  var list = function (n) {
    return a(n).split(',').map(function (x) { return x.trim(); }).filter(String);
  };
  // The tag's settings (table entry 3 for the wasm).
  var cfg = {
    site: a('data-site'),
    endpoint: a('data-endpoint') || new URL('/v1/collect', s.src).href,
    consent: a('data-consent') == 'required',
    capture: list('data-capture'),
    ignore: list('data-ignore-paths'),
    hash: s.hasAttribute('data-hash-routing'),
    url: location.href
  };
  if (!cfg.site) return;
  // The value table: 0 undefined, 1 null, 2 window, 3 cfg, 4 the store's memory,
  // 5 the tracker's state, then the names of the wasm's custom section `n`, then
  // the values of the call in progress, cut away when it returns (B: where they
  // begin).
  var H = [void 0, null, w, cfg, {}, {}], B, X, S, E = new TextEncoder, D = new TextDecoder;
  function put(v) { return v === void 0 ? 0 : H.push(v) - 1; }
  function mem(p, n) { return new Uint8Array(X.memory.buffer, p, n); }
  var imports = { c: {
    g: function (o, k) { try { return put(H[o][H[k]]); } catch (e) { return 0; } },
    s: function (o, k, v) { try { H[o][H[k]] = H[v]; } catch (e) {} },
    c: function (o, m, x, y) {
      try {
        var f = H[o][H[m]];
        return put(x < 0 ? f.call(H[o]) : y < 0 ? f.call(H[o], H[x]) : f.call(H[o], H[x], H[y]));
      } catch (e) { return -1; }
    },
    e: function (x, y) { return H[x] === H[y]; },
    t: function (x) {
      var v = H[x], o = typeof v;
      return (v ? 1 : 0) | (v && (o == 'object' || o == 'function') ? 2 : 0) |
        (Array.isArray(v) ? 4 : 0) | (o == 'string' ? 8 : 0);
    },
    n: function (x) { return typeof H[x] == 'number' ? H[x] : NaN; },
    f: put,
    d: function (p, n) { return put(D.decode(mem(p, n))); },
    // UTF-8 of a string, cut to whole characters within m bytes, for w().
    l: function (x, m) {
      if (typeof H[x] != 'string') return -1;
      S = E.encode(H[x]);
      if (S.length > m) {
        while (m && (S[m] & 192) == 128) m--;
        S = S.subarray(0, m);
      }
      return S.length;
    },
    w: function (p) { mem(p, S.length).set(S); },
    o: function (x) { return put(x ? [] : {}); },
    j: function (x, y) { try { return put(y ? JSON.parse(H[x]) : JSON.stringify(H[x])); } catch (e) { return 0; } },
    q: function (x, k) { try { H[x].sort(function (a, b) { return a[H[k]] - b[H[k]]; }); } catch (e) {} },
    now: Date.now,
    r: Math.random,
    i: function (x) {
      var c = w.crypto, l = w.__closeloop_log, v = '';
      if (c && c.randomUUID) v = c.randomUUID();
      else while (v.length < 32) v += (Math.random() * 16 | 0).toString(16);
      // Test hook: a page that defines `window.__closeloop_log = []` before the
      // tag gets the id of every event the tracker creates pushed into it.
      if (x && l && l.push) l.push(v);
      return put(v);
    },
    k: function (ms) { setTimeout(function () { call(1); }, ms); },
    p: function (u, b, ms) {
      var c = w.AbortController && new AbortController, t = setTimeout(function () { c && c.abort(); }, ms);
      fetch(H[u], { method: 'POST', body: H[b], keepalive: true, credentials: 'omit', signal: c && c.signal })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (x) { clearTimeout(t); call(2, x); }, function (e) { clearTimeout(t); call(3, +e || 0); });
    }
  } };
  var R, q = [], pre = w.closeloop;
  // The wasm's one export, cl(op, a, b) (see tracker/src/lib.rs `cl`): 0 start,
  // 1 tick, 2 ack, 3 fail, 4 nav, 5 form, 6 hide, 7 show, 8 identify, 9 track,
  // 10 consent, 11 profile, 12 settle.
  function run(n, x, y) {
    var b = H.length;
    try { return H[X.cl(n, put(x), put(y))]; } catch (e) { return null; } finally { H.length = b > B ? b : B; }
  }
  // Calls wait in `q` until the tracker has started and settled (R), but for the
  // page going away (6), which settles at once.
  function call(n, x, y) {
    if (!R && !(X && n == 6)) { q.push([n, x, y]); return null; }
    return run(n, x, y);
  }
  function api(n) { return function (x, y) { return call(n, x, y); }; }
  w.closeloop = {
    _cl: 1,
    identify: api(8),
    track: api(9),
    consent: api(10),
    profile: function () { return R ? shape(call(11)) : null; }
  };
  // closeloop.profile() from the wasm's stored profile (tracker/src/profile.rs
  // `build`: f/l entries {u, r, t}, ft/lt touches, pg views per path, lead, vid).
  function shape(p) {
    var isObj = function (o) { return typeof o == 'object' && o !== null; };
    if (!isObj(p)) return null;
    var pg = isObj(p.pg) ? p.pg : {}, pages = [], secs = Object.create(null), total = 0;
    Object.keys(pg).forEach(function (k) {
      var n = typeof pg[k] == 'number' ? pg[k] : 0;
      var r = k.charAt(0) == '/' ? k.slice(1) : k, i = r.indexOf('/');
      var sec = i < 0 ? k : k.slice(0, i + 1); // a path's first segment: /blog/x -> /blog
      total += n;
      secs[sec] = (secs[sec] || 0) + n;
      pages.push([k, n]);
    });
    // The 5 most viewed, then by name.
    function top(v, key) {
      return v.sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); })
        .slice(0, 5).map(function (e) { var o = {}; o[key] = e[0]; o.views = e[1]; return o; });
    }
    // A touch: the entry (landing_url, referrer, at) with the edge's classification.
    function touch(e, a) {
      var eo = isObj(e), ao = isObj(a), o = {};
      if (!eo && !ao) return null;
      ['channel', 'source', 'medium', 'campaign'].forEach(function (k) {
        o[k] = ao && a[k] !== undefined ? a[k] : null;
      });
      o.landing_url = eo ? e.u : undefined;
      o.referrer = eo ? e.r : undefined;
      o.at = eo ? e.t : undefined;
      return o;
    }
    return {
      visitor_id: p.vid,
      first_touch: touch(p.f, p.ft),
      latest_touch: touch(p.l, p.lt),
      top_pages: top(pages, 'path'),
      top_sections: top(Object.keys(secs).map(function (k) { return [k, secs[k]]; }), 'section'),
      pageviews: total,
      is_lead: !!p.lead
    };
  }
  function after(o, n, f) {
    var orig = o && o[n];
    if (typeof orig != 'function') return;
    o[n] = function () {
      var r = orig.apply(this, arguments);
      f(this);
      return r;
    };
  }
  after(h, 'pushState', function () { call(4, 0); });
  after(h, 'replaceState', function () { call(4, 1); });
  w.addEventListener('popstate', function () { call(4, 2); });
  if (cfg.hash) w.addEventListener('hashchange', function () { call(4, 3); });
  d.addEventListener('submit', function (e) { call(5, e.target); }, true);
  // form.submit() fires no submit event (requestSubmit() does, so it needs no patch).
  var F = w.HTMLFormElement && HTMLFormElement.prototype, fs = F && F.submit;
  if (fs) F.submit = function () { call(5, this); return fs.apply(this, arguments); };
  d.addEventListener('visibilitychange', function () {
    call(d.visibilityState == 'hidden' ? 6 : 7);
  });
  // Leaving: a beacon, and the send lock given up for the next page (1).
  w.addEventListener('pagehide', function () { call(6, 1); });
  w.addEventListener('online', function () { call(7); });
  // Calls queued by a snippet before this script (window.closeloop = [[name, ...args]]).
  var OPS = { identify: 8, track: 9, consent: 10 };
  if (pre && pre.length) for (var i = 0; i < pre.length; i++) {
    var op = pre[i] && OPS[pre[i][0]];
    if (op) q.push([op, pre[i][1], pre[i][2]]);
  }
  try {
    var W = WebAssembly, url = new URL(WASM_PATH, s.src), f = fetch(url);
    var bytes = function (p) {
      return (p || fetch(url)).then(function (r) { return r.arrayBuffer(); }).then(function (b) { return W.instantiate(b, imports); });
    };
    // Opens the page's storage area when the wasm's response arrives (its body still
    // streams in and compiles), marked for the bench (storage/stored): the page's
    // first localStorage access is a synchronous round trip to the browser process
    // (2-6 ms here, tens under load), which start() would otherwise wait for between
    // the call into the wasm and the page view queued. Reading the consent answer,
    // the key start() reads first, loads the whole area (Chromium keeps it for the
    // page), so start()'s reads and its one write need no round trip. Not in the
    // loader's run: the earlier in the load, the longer the round trip (fresh
    // Chromium, 10 loads each: 5.7 ms median right after the loader, 3.2 ms at the
    // response, 1.9 ms inside start()). If the wasm is ready first, start() opens
    // the area itself.
    f.then(function () {
      mk('storage');
      try { w.localStorage.getItem('_cl_c'); } catch (e) {}
      mk('stored');
    }, function () {});
    // Compiled while it downloads (the worker serves it as application/wasm).
    (W.instantiateStreaming ? W.instantiateStreaming(f, imports).catch(function () { return bytes(); }) : bytes(f))
      .then(function (r) {
        X = r.instance.exports;
        mk('start');
        // The names (tracker/src/keys.rs) become table entries 6, 7, ...
        H.push.apply(H, D.decode(W.Module.customSections(r.module, 'n')[0]).split(' '));
        B = H.length;
        run(0);
        mk('started');
        setTimeout(function () {
          mk('settle');
          run(12);
          mk('settled');
          R = 1;
          while (q.length) { var c = q.shift(); call(c[0], c[1], c[2]); }
        }, 0);
      }, function () {});
  } catch (e) {}
  mk('loaded');
})();
