//! The Closeloop browser tracker: page views (with single-page-app navigations),
//! entry sources, form submits, identify/track calls, a durable send queue and the
//! `closeloop.profile()` personalisation hook, compiled to WebAssembly.
//!
//! The JS loader (`tracker/js/loader.js`) reads the tag's attributes, patches
//! `history` and `HTMLFormElement.prototype.submit`, listens to the page's events
//! and calls the functions exported here, each wrapped in `try`/`catch`: a failure
//! in the tracker never reaches the site. Module map:
//! - [`store`]: `localStorage` with a memory fallback, the visitor-id cookie;
//! - [`page`]: page views, SPA navigations, reloads, ignored paths, entries;
//! - [`form`]: which form fields are recorded and which values kept;
//! - [`send`]: the bounded queue, batches, acknowledgements, backoff, tab lock;
//! - [`profile`]: touches, top pages and sections, lead flag;
//! - [`keys`]: the wire names (checked against `closeloop_core::wire`).
//!
//! Size matters (every visitor downloads this): no `format!`, no serde, no
//! panicking `unwrap`, the browser's `JSON` through js-sys. The download build
//! (`cargo xtask build`, which passes `--cfg closeloop_tracker_bin` and builds this
//! package alone) is `no_std` with a panic handler that traps (the loader catches
//! the trap), so none of std's panic and formatting machinery is linked. Every
//! other build (unit tests, clippy, workspace builds where another crate turns on
//! wasm-bindgen's `std`) is a plain std crate.

#![cfg_attr(closeloop_tracker_bin, no_std)]

extern crate alloc;

pub mod form;
pub mod js;
pub mod keys;
pub mod page;
pub mod profile;
pub mod send;
pub mod store;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use wasm_bindgen::prelude::*;

/// Whether the tracker may store and send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Consent {
    /// Consent is not needed, or was given.
    Granted,
    /// Consent is required (tag or GPC) and not given yet: events are held in
    /// memory only, nothing is stored or sent.
    Pending,
    /// The visitor refused (`closeloop.consent(false)`): nothing is recorded.
    Denied,
}

/// What the tag says (`data-*` attributes, read by the loader).
#[derive(Default)]
pub struct Config {
    /// `data-site`.
    pub site: String,
    /// `data-endpoint`, or the loader's origin + `/v1/collect`.
    pub endpoint: String,
    /// `data-consent="required"`.
    pub consent_required: bool,
    /// `data-capture`: extra field names whose values are kept.
    pub capture: Vec<String>,
    /// `data-ignore-paths`: path globs (`*` matches anything) never recorded.
    pub ignore: Vec<String>,
    /// `data-hash-routing`: hash changes are page views.
    pub hash_routing: bool,
}

/// The tracker's state for this page.
pub struct Tracker {
    /// The tag's settings.
    pub cfg: Config,
    /// Storage.
    pub store: store::Store,
    /// Consent state.
    pub consent: Consent,
    /// The visitor id.
    pub vid: String,
    /// This tab's random id (for the send lock).
    pub tab: String,
    /// The current page: URL, its referrer, and its keys for change detection.
    pub page: page::Page,
    /// Delivery state.
    pub send: send::SendState,
    /// The last form submit recorded (fingerprint, time), to skip the same submit
    /// seen twice (submit event, then the site's script calling `form.submit()`).
    pub last_form: (String, f64),
    /// Whether [`settle`] ran: the start-up work deferred until the page view is
    /// queued (visitor id, cookie mirror, profile, queue bound, send timer).
    pub settled: bool,
    /// The landing page view [`settle`] still has to count in the profile.
    pub landed: Option<page::Landed>,
    /// The loader's I/O functions: `timer(ms)` calls [`tick`] after `ms`;
    /// `post(url, body)` sends with `fetch` (keepalive, `text/plain`, no
    /// credentials) and calls [`ack`] with a 2xx answer's text or [`fail`].
    /// (Done in JS: no wasm-bindgen closures, whose machinery costs bytes.)
    pub io: JsValue,
}

/// The tracker's one global: the page's state, behind a `RefCell`.
struct Global(RefCell<Option<Tracker>>);

// SAFETY: the tracker runs on wasm32-unknown-unknown without the atomics feature,
// where there is exactly one thread; `Tracker` is never shared with another. (Native
// builds only run the unit tests of pure functions, which never touch this.)
#[allow(unsafe_code)]
unsafe impl Sync for Global {}

static TRACKER: Global = Global(RefCell::new(None));

/// Runs `f` on the tracker if it is started and not already busy (a re-entrant call
/// is skipped rather than risking a trap); first [`settle`]s it if that is still due.
fn with(f: impl FnOnce(&mut Tracker)) {
    if let Ok(mut guard) = TRACKER.0.try_borrow_mut() {
        if let Some(t) = guard.as_mut() {
            if !t.settled {
                settle(t);
            }
            f(t);
        }
    }
}

/// A comma list's trimmed, non-empty items (an empty list, the usual case, links
/// none of `split`'s code into the start path: each function called costs a lazy
/// compile there).
fn list(s: String) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    js::parts(&s, b',')
        .map(str::trim_ascii)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// The one export: the loader calls every entry point through it (one export
/// instead of twelve: each costs a wasm-bindgen shim in the wasm and a function in
/// the JS glue). `op` picks the function, `a` and `b` are its arguments:
/// 0 [`start`]`(a)`, 1 [`tick`], 2 [`ack`]`(a)`, 3 [`fail`], 4 [`nav`]`(a)`,
/// 5 [`form`]`(a)`, 6 [`hide`], 7 [`show`], 8 [`identify`]`(a, b)`,
/// 9 [`track`]`(a, b)`, 10 [`consent`]`(a)`, 11 [`profile`] (its result is returned;
/// `undefined` for the others and for an unknown `op`), 12 [`settle`] (the loader
/// calls it in the task after `start`; any other call settles first too).
#[wasm_bindgen]
pub fn cl(op: u32, a: JsValue, b: JsValue) -> JsValue {
    match op {
        0 => start(a),
        1 => tick(),
        2 => ack(a),
        3 => fail(),
        4 => nav(a.as_f64().unwrap_or(0.0) as u32),
        5 => form(a),
        6 => hide(),
        7 => show(),
        8 => identify(a, b),
        9 => track(a, b),
        10 => consent(a),
        11 => return profile(),
        12 => with(|_| {}),
        _ => {}
    }
    JsValue::UNDEFINED
}

/// Starts the tracker and queues the landing page view, doing as little as that
/// needs (this is the start-up budget: main-thread time until the first event is
/// durably queued): the consent answer, the page, one `setItem`. Everything else
/// waits for [`settle`]. `cfg` is the loader's object: `site`, `endpoint`,
/// `consent` (bool), `capture`, `ignore` (comma lists), `hash` (bool) and `url`
/// (the landing URL, read before any script could rewrite it).
#[inline(never)]
pub fn start(cfg: JsValue) {
    let started = TRACKER.0.try_borrow().map(|g| g.is_some()).unwrap_or(true);
    let config = Config {
        site: js::get_str(&cfg, "site"),
        endpoint: js::get_str(&cfg, "endpoint"),
        consent_required: js::get(&cfg, "consent").is_truthy(),
        capture: list(js::get_str(&cfg, "capture")),
        ignore: list(js::get_str(&cfg, "ignore")),
        hash_routing: js::get(&cfg, "hash").is_truthy(),
    };
    if started || config.site.is_empty() || config.endpoint.is_empty() {
        return;
    }
    let gpc = js::get(&js::get(&js::global(), "navigator"), "globalPrivacyControl").is_truthy();
    let mut store = store::Store::open(false);
    let said = store.get(store::CONSENT);
    let consent = match said.as_deref() {
        Some("1") => Consent::Granted,
        Some("0") => Consent::Denied,
        _ if config.consent_required || gpc => Consent::Pending,
        _ => Consent::Granted,
    };
    store.persist = consent == Consent::Granted;
    let landing = js::get_str(&cfg, "url");
    let mut t = Tracker {
        cfg: config,
        store,
        consent,
        vid: String::new(),
        tab: String::new(),
        page: page::Page::default(),
        send: send::SendState::default(),
        last_form: (String::new(), 0.0),
        settled: false,
        landed: None,
        io: cfg,
    };
    page::landing(&mut t, landing);
    if let Ok(mut g) = TRACKER.0.try_borrow_mut() {
        *g = Some(t);
    }
}

/// The start-up work that can wait until the landing page view is queued: the
/// visitor id (storage, else the cookie, else a new one) stored and mirrored in the
/// cookie, this tab's id, the landing page in the profile, the queue's bound, and
/// the send timer (also for events earlier pages left unsent).
#[inline(never)]
fn settle(t: &mut Tracker) {
    t.settled = true;
    t.vid = t
        .store
        .get(store::VID)
        .filter(|v| v.len() >= 8)
        .or_else(store::read_cookie)
        .filter(|v| v.len() >= 8 && v.len() <= 64)
        .unwrap_or_else(js::random_id);
    t.tab = js::random_id();
    if t.consent == Consent::Granted {
        remember_visitor(t);
    }
    if let Some(l) = t.landed.take() {
        profile::landed(t, &l);
    }
    if send::bound(t) > 0 {
        send::schedule(t, send::SEND_DELAY_MS);
    }
}

/// Stores the visitor id and refreshes its cookie mirror.
fn remember_visitor(t: &mut Tracker) {
    let vid = t.vid.clone();
    t.store.set(store::VID, &vid);
    store::mirror_cookie(&vid);
}

/// The loader's timer fired (see [`Tracker::io`]).
#[inline(never)]
pub fn tick() {
    with(|t| {
        // Whatever `timer_at` said, no timer is pending now (timers may fire a
        // little before `Date.now()` reaches their time).
        t.send.timer_at = 0.0;
        send::flush(t, false)
    });
}

/// The edge answered a batch with 2xx: its `CollectResponse` JSON text.
#[inline(never)]
pub fn ack(text: JsValue) {
    with(|t| send::on_ack(t, &text.as_string().unwrap_or_default()));
}

/// A batch failed (network error, non-2xx status, unreadable body).
#[inline(never)]
pub fn fail() {
    with(send::on_failure);
}

/// A history change: `kind` 0 = `pushState`, 1 = `replaceState`, 2 = `popstate`,
/// 3 = `hashchange`.
#[inline(never)]
pub fn nav(kind: u32) {
    with(|t| page::navigate(t, kind));
}

/// A form is being submitted (the `submit` event, or `form.submit()` by script).
#[inline(never)]
pub fn form(el: JsValue) {
    with(|t| form::submitted(t, &el));
}

/// The page is being hidden or unloaded: send what is queued as a beacon.
#[inline(never)]
pub fn hide() {
    with(|t| send::flush(t, true));
}

/// The page is visible again, or the browser came back online: send now.
#[inline(never)]
pub fn show() {
    with(|t| {
        t.send.retry_at = 0.0;
        send::flush(t, false)
    });
}

/// `closeloop.identify(email, traits)`: the visitor said who they are.
#[inline(never)]
pub fn identify(email: JsValue, traits: JsValue) {
    with(|t| {
        let email = js::truncate(email.as_string().unwrap_or_default(), keys::MAX_FIELD_LEN);
        let email = email.trim_ascii();
        if !js::has(email, "@") {
            return;
        }
        let ev = send::event(t, keys::IDENTIFY);
        js::set_str(&ev, keys::EMAIL, email);
        let traits = string_map(&traits);
        if js_sys::Object::keys(&traits.clone().into()).length() > 0 {
            js::set(&ev, keys::TRAITS, &traits);
        }
        profile::mark_lead(t);
        send::enqueue(t, ev, 0.0);
    });
}

/// `closeloop.track(name, props)`: a custom event.
#[inline(never)]
pub fn track(name: JsValue, props: JsValue) {
    with(|t| {
        let name = js::truncate(name.as_string().unwrap_or_default(), keys::MAX_FIELD_LEN);
        if name.is_empty() || page::ignored(t) {
            return;
        }
        let ev = send::event(t, keys::TRACK);
        js::set_str(&ev, keys::NAME, &name);
        let props = string_map(&props);
        if js_sys::Object::keys(&props.clone().into()).length() > 0 {
            js::set(&ev, keys::PROPS, &props);
        }
        send::enqueue(t, ev, send::SEND_DELAY_MS);
    });
}

/// `closeloop.consent(bool)`: grant (store and send what was held) or revoke
/// (forget everything stored, record nothing more).
#[inline(never)]
pub fn consent(on: JsValue) {
    with(|t| {
        if on.is_truthy() {
            t.consent = Consent::Granted;
            t.store.persist = true;
            t.store.flush_memory();
            t.store.set(store::CONSENT, "1");
            remember_visitor(t);
            send::schedule(t, 0.0);
        } else {
            t.consent = Consent::Denied;
            t.store.persist = false;
            t.store.clear();
            t.vid = js::random_id();
            t.send = send::SendState::default();
            // The refusal itself is kept, so the next page does not track either.
            t.store.persist = true;
            t.store.set(store::CONSENT, "0");
            t.store.persist = false;
        }
    });
}

/// `closeloop.profile()`: the stored profile with the visitor id, which the loader
/// shapes into first and latest touch, top pages and sections, lead flag (see
/// [`profile::build`]); `null` before the tracker started.
#[inline(never)]
pub fn profile() -> JsValue {
    let mut out = JsValue::NULL;
    with(|t| out = profile::build(t));
    out
}

/// A plain object whose values are strings (numbers and booleans converted, other
/// values as JSON), at most `MAX_FIELDS` keys, each value truncated.
fn string_map(v: &JsValue) -> JsValue {
    use keys::{MAX_FIELDS, MAX_FIELD_LEN};
    let out = js::obj();
    if !v.is_object() {
        return out;
    }
    let keys = js_sys::Object::keys(&js_sys::Object::from(v.clone()));
    for k in keys.iter().take(MAX_FIELDS) {
        let Some(k) = k.as_string() else { continue };
        let val = js::get(v, &k);
        let s = val.as_string().unwrap_or_else(|| js::stringify(&val));
        if !k.is_empty() && !s.is_empty() {
            js::set_str(
                &out,
                &js::truncate(k, MAX_FIELD_LEN),
                &js::truncate(s, MAX_FIELD_LEN),
            );
        }
    }
    out
}

/// The allocator: `lol_alloc`'s free list, a fraction of dlmalloc's size. The
/// tracker allocates little (ids, a few strings per event) and frees it again.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
// SAFETY: wasm32-unknown-unknown without the atomics feature runs one thread,
// which is what `AssumeSingleThreaded` requires.
#[allow(unsafe_code)]
static ALLOC: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// On wasm32 a panic traps at once (`unreachable`): no message is formatted. The
/// loader catches the resulting `RuntimeError`, so the site never sees it.
#[cfg(all(closeloop_tracker_bin, target_arch = "wasm32"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
