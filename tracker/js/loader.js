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
  var a = function (n) { return s.getAttribute(n); };
  var T, q = [], pre = w.closeloop;
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
  // 10 consent, 11 profile.
  var OPS = { identify: 8, track: 9, consent: 10 };
  function call(n, x, y) {
    if (!T) { q.push([n, x, y]); return null; }
    try { return T(n, x, y); } catch (e) { return null; }
  }
  function api(n) { return function (x, y) { return call(n, x, y); }; }
  w.closeloop = {
    _cl: 1,
    identify: api(8),
    track: api(9),
    consent: api(10),
    profile: function () { return T ? call(11) : null; }
  };
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
    wasm_bindgen({ module_or_path: new URL(WASM_PATH, s.src) }).then(function () {
      T = wasm_bindgen.cl;
      // Marks for the main-thread budget (start to first event queued), read by tests.
      var P = w.performance, mk = function (n) { try { P.mark(n); } catch (e) {} };
      mk('closeloop:start');
      try { T(0, cfg); } catch (e) { return; }
      mk('closeloop:started');
      while (q.length) { var c = q.shift(); call(c[0], c[1], c[2]); }
    }, function () {});
  } catch (e) {}
})();
