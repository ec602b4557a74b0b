// Closeloop loader: the part of t.js that runs first. The build (cargo xtask build)
// puts wasm-bindgen's `--target no-modules` glue before this file and minifies both
// into one IIFE, so `wasm_bindgen` below is the glue's local init function and
// WASM_PATH is the content-hashed wasm file, relative to this script's URL.
//
// It reads the tag, installs `window.closeloop` (calls made before the wasm is
// ready are queued and replayed), patches history and form.submit, and forwards
// page events to the wasm. Every call into the tracker is wrapped: nothing the
// tracker does can throw into the site.
(function () {
  var w = window, d = document, h = w.history;
  var s = d.currentScript || d.querySelector('script[data-site]');
  if (!s || (w.closeloop && w.closeloop._cl)) return;
  // Marks for the bench (xtask/src/bench_tracker.rs): the loader's run, start()
  // (the budget: until the first event is queued) and settle() (deferred work).
  var P = w.performance, mk = function (n) { try { P.mark('closeloop:' + n); } catch (e) {} };
  mk('loader');
  var a = function (n) { return s.getAttribute(n); };
  var T, R, q = [], pre = w.closeloop;
  var cfg = {
    site: a('data-site') || '',
    endpoint: a('data-endpoint') || new URL('/v1/collect', s.src).href,
    consent: a('data-consent') == 'required',
    capture: a('data-capture') || '',
    ignore: a('data-ignore-paths') || '',
    hash: s.hasAttribute('data-hash-routing'),
    url: location.href,
    // I/O the tracker decides and the loader carries out (no wasm closures needed).
    timer: function (ms) { setTimeout(function () { call(1); }, ms); },
    post: function (url, body) {
      fetch(url, { method: 'POST', body: body, keepalive: true, credentials: 'omit' })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (t) { call(2, t); }, function () { call(3); });
    }
  };
  // The wasm's one export, cl(op, a, b) (see tracker/src/lib.rs `cl`): 0 start,
  // 1 tick, 2 ack, 3 fail, 4 nav, 5 form, 6 hide, 7 show, 8 identify, 9 track,
  // 10 consent, 11 profile, 12 settle.
  var OPS = { identify: 8, track: 9, consent: 10 };
  // Calls wait in `q` until the tracker has started and settled (R), but for the
  // page going away (6), which settles at once.
  function call(n, x, y) {
    if (!R && !(T && n == 6)) { q.push([n, x, y]); return null; }
    try { return T(n, x, y); } catch (e) { return null; }
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
  w.addEventListener('pagehide', function () { call(6); });
  w.addEventListener('online', function () { call(7); });
  // Calls queued by a snippet before this script (window.closeloop = [[name, ...args]]).
  if (pre && pre.length) for (var i = 0; i < pre.length; i++) {
    var op = pre[i] && OPS[pre[i][0]];
    if (op) q.push([op, pre[i][1], pre[i][2]]);
  }
  try {
    wasm_bindgen(new URL(WASM_PATH, s.src)).then(function () {
      T = wasm_bindgen.cl;
      mk('start');
      try { T(0, cfg); } catch (e) { return; }
      mk('started');
      setTimeout(function () {
        mk('settle');
        try { T(12); } catch (e) {}
        mk('settled');
        R = 1;
        while (q.length) { var c = q.shift(); call(c[0], c[1], c[2]); }
      }, 0);
    }, function () {});
  } catch (e) {}
  mk('loaded');
})();
