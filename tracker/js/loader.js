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
    timer: function (ms) { setTimeout(function () { call('tick', []); }, ms); },
    post: function (url, body) {
      fetch(url, { method: 'POST', body: body, keepalive: true, credentials: 'omit' })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (t) { call('ack', [t]); }, function () { call('fail', []); });
    }
  };
  function call(n, args) {
    if (!T) { q.push([n, args]); return null; }
    try { return T[n].apply(null, args); } catch (e) { return null; }
  }
  function api(n) { return function () { return call(n, [].slice.call(arguments)); }; }
  w.closeloop = {
    _cl: 1,
    identify: api('identify'),
    track: api('track'),
    consent: api('consent'),
    profile: function () { return T ? call('profile', []) : null; }
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
  after(h, 'pushState', function () { call('nav', [0]); });
  after(h, 'replaceState', function () { call('nav', [1]); });
  w.addEventListener('popstate', function () { call('nav', [2]); });
  if (cfg.hash) w.addEventListener('hashchange', function () { call('nav', [3]); });
  d.addEventListener('submit', function (e) { call('form', [e.target]); }, true);
  // form.submit() fires no submit event (requestSubmit() does, so it needs no patch).
  var F = w.HTMLFormElement && HTMLFormElement.prototype, fs = F && F.submit;
  if (fs) F.submit = function () { call('form', [this]); return fs.apply(this, arguments); };
  d.addEventListener('visibilitychange', function () {
    call(d.visibilityState == 'hidden' ? 'hide' : 'show', []);
  });
  w.addEventListener('pagehide', function () { call('hide', []); });
  w.addEventListener('online', function () { call('show', []); });
  // Calls queued by a snippet before this script (window.closeloop = [[name, ...args]]).
  if (pre && pre.length) for (var i = 0; i < pre.length; i++) q.push([pre[i][0], [].slice.call(pre[i], 1)]);
  try {
    wasm_bindgen({ module_or_path: new URL(WASM_PATH, s.src) }).then(function () {
      T = wasm_bindgen;
      // Marks for the main-thread budget (start to first event queued), read by tests.
      var P = w.performance, mk = function (n) { try { P.mark(n); } catch (e) {} };
      mk('closeloop:start');
      try { T.start(cfg); } catch (e) { return; }
      mk('closeloop:started');
      while (q.length) { var c = q.shift(); call(c[0], c[1]); }
    }, function () {});
  } catch (e) {}
})();
