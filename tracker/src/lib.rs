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
//! - [`keys`]: every name used with JavaScript (the wire's checked against
//!   `closeloop_core::wire`);
//! - [`js`]: the value table and the imports the loader defines.
//!
//! Size matters (every visitor downloads this): no `format!`, no serde, no
//! panicking `unwrap`, no wasm-bindgen: a dozen generic imports over the loader's
//! value table ([`js`]) and the browser's `JSON`. The download build
//! (`cargo xtask build`, which passes `--cfg closeloop_tracker_bin` and builds this
//! package alone) is `no_std` with a panic handler that traps (the loader catches
//! the trap), so none of std's panic and formatting machinery is linked. Every
//! other build (unit tests, clippy) is a plain std crate.

#![cfg_attr(closeloop_tracker_bin, no_std)]

pub mod form;
pub mod js;
pub mod keys;
pub mod page;
pub mod profile;
pub mod send;
pub mod store;

use core::cell::RefCell;
use js::{s, CFG, GLOBAL, ST, V};
use keys::{MAX_FIELDS, MAX_FIELD_LEN, N};

/// Whether the tracker may store and send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Consent {
    /// Consent is not needed, or was given.
    Granted,
    /// Consent is required by the tag and not given yet: events are held in memory
    /// only, nothing is stored or sent.
    Pending,
    /// The visitor refused (`closeloop.consent(false)`), or the browser sends
    /// Global Privacy Control: nothing is recorded.
    Denied,
}

/// The tracker's state for this page.
pub struct Tracker {
    /// Storage.
    pub store: store::Store,
    /// Consent state.
    pub consent: Consent,
    /// Global Privacy Control is on: it always wins (no stored answer and no
    /// `consent(true)` overrides it).
    pub gpc: bool,
    /// `data-hash-routing`: hash changes are page views.
    pub hash_routing: bool,
    /// Whether the current page is on an ignored path (its URL is never sent, not
    /// even as the next page's referrer).
    pub ignored: bool,
    /// Delivery state.
    pub send: send::SendState,
    /// When the last form submit was recorded (its fingerprint is [`ST`]'s `form`),
    /// to skip the same submit seen twice (submit event, then the site's script
    /// calling `form.submit()`).
    pub last_form: f64,
    /// Whether [`settle`] ran: the start-up work deferred until the page view is
    /// queued (visitor id, cookie mirror, profile, queue bound, send timer).
    pub settled: bool,
    /// When the landing page was viewed, while [`settle`] still has to count it
    /// in the profile (0 otherwise).
    pub landed: f64,
}

impl Tracker {
    /// Whether events are recorded at all (not after a refusal, not under GPC).
    pub fn records(&self) -> bool {
        self.consent != Consent::Denied
    }
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

/// The names table ([`keys::ALL`]) as the wasm's custom section `n`, which the
/// loader reads once (`WebAssembly.Module.customSections`): names cost no memory,
/// no data segment and no code.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // `link_section`: a custom section of bytes, never read by Rust.
#[link_section = "n"]
pub static NAMES: [u8; keys::ALL.len()] = {
    let b = keys::ALL.as_bytes();
    let mut out = [0u8; keys::ALL.len()];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
};

/// The one export: the loader calls every entry point through it (one export
/// instead of twelve). `op` picks the function, `a` and `b` are its arguments
/// (values of the loader's table, see [`js`]); the result is a value too:
/// 0 [`start`], 1 [`tick`], 2 [`ack`]`(a)`, 3 [`fail`]`(a)`, 4 [`nav`]`(a)`,
/// 5 [`form`]`(a)`, 6 [`hide`]`(a)`, 7 [`show`], 8 [`identify`]`(a, b)`,
/// 9 [`track`]`(a, b)`, 10 [`consent`]`(a)`, 11 [`profile`] (its result is
/// returned; `undefined` for the others and for an unknown `op`), 12 [`settle`]
/// (the loader calls it in the task after `start`; any other call settles first
/// too).
#[allow(unsafe_code)] // `no_mangle`: the export's name, `cl`.
#[no_mangle]
pub extern "C" fn cl(op: u32, a: u32, b: u32) -> u32 {
    let (a, b) = (V(a), V(b));
    match op {
        0 => start(),
        1 => tick(),
        2 => ack(a),
        3 => fail(a),
        4 => nav(a),
        5 => form(a),
        6 => hide(a),
        7 => show(),
        8 => identify(a, b),
        9 => track(a, b),
        10 => consent(a),
        11 => return profile().0,
        12 => with(|_| {}),
        _ => {}
    }
    js::UNDEFINED.0
}

/// Starts the tracker and queues the landing page view, doing as little as that
/// needs (this is the start-up budget: main-thread time until the first event is
/// durably queued): the consent answer, the page, one `setItem`. Everything else
/// waits for [`settle`]. The tag's settings are the loader's object [`CFG`]:
/// `site`, `endpoint`, `consent` (bool), `capture`, `ignore` (arrays), `hash`
/// (bool) and `url` (the landing URL, read before any script could rewrite it).
///
/// Global Privacy Control always wins: under it the tracker records nothing, and
/// what it stored on earlier visits (queue, profile, visitor id, consent answer,
/// cookie) is deleted.
#[inline(never)]
pub fn start() {
    if TRACKER.0.try_borrow().map(|g| g.is_some()).unwrap_or(true) {
        return;
    }
    let gpc = GLOBAL
        .get(N::Navigator)
        .get(N::GlobalPrivacyControl)
        .truthy();
    let mut store = store::Store { persist: false };
    let said = store.get(N::KeyConsent);
    let consent = if gpc || said.is(N::Zero) {
        Consent::Denied
    } else if said.is(N::One) || !CFG.get(N::Consent).truthy() {
        Consent::Granted
    } else {
        Consent::Pending
    };
    if gpc {
        store.clear();
    }
    store.persist = consent == Consent::Granted;
    let mut t = Tracker {
        store,
        consent,
        gpc,
        hash_routing: CFG.get(N::Hash).truthy(),
        ignored: false,
        send: send::SendState::default(),
        last_form: 0.0,
        settled: false,
        landed: 0.0,
    };
    page::landing(&mut t);
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
    let ok = |v: &V| (8..=64).contains(&v.utf8_len());
    let vid = Some(t.store.get(N::KeyVid))
        .filter(ok)
        .or_else(store::read_cookie)
        .filter(ok)
        .unwrap_or_else(|| js::id(false));
    ST.set(N::Vid, vid);
    ST.set(N::Tab, js::id(false));
    if t.consent == Consent::Granted {
        remember_visitor(t);
    }
    if t.landed > 0.0 {
        profile::landed(t, t.landed);
        t.landed = 0.0;
    }
    if send::bound(t) > 0 {
        send::schedule(t, send::SEND_DELAY_MS);
    }
}

/// Stores the visitor id and refreshes its cookie mirror.
fn remember_visitor(t: &mut Tracker) {
    let vid = ST.get(N::Vid);
    t.store.set(N::KeyVid, vid);
    store::mirror_cookie(vid);
}

/// The loader's timer fired (see [`js::timer`]).
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
pub fn ack(text: V) {
    with(|t| send::on_ack(t, text));
}

/// A batch failed: `status` is the HTTP status of a non-2xx answer, or 0 (network
/// error, no answer within the timeout, unreadable body).
#[inline(never)]
pub fn fail(status: V) {
    with(|t| send::on_failure(t, status.num().unwrap_or(0.0)));
}

/// A history change: `kind` 0 = `pushState`, 1 = `replaceState`, 2 = `popstate`,
/// 3 = `hashchange`.
#[inline(never)]
pub fn nav(kind: V) {
    with(|t| page::navigate(t, kind.num().unwrap_or(0.0) as u32));
}

/// A form is being submitted (the `submit` event, or `form.submit()` by script).
#[inline(never)]
pub fn form(el: V) {
    with(|t| {
        if t.records() {
            form::submitted(t, el)
        }
    });
}

/// The page is being hidden or (`unload` truthy: `pagehide`) going away: send what
/// is queued as a beacon; a page going away also gives the send lock up, so that
/// the next page need not wait for it to expire.
#[inline(never)]
pub fn hide(unload: V) {
    with(|t| {
        send::flush(t, true);
        if unload.truthy() {
            send::release_lock(t);
        }
    });
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
pub fn identify(email: V, traits: V) {
    with(|t| {
        let mut buf = [0u8; MAX_FIELD_LEN];
        let email = js::read(email, &mut buf).unwrap_or("").trim_ascii();
        if !t.records() || !js::has(email, "@") {
            return;
        }
        let ev = send::event(t, N::Identify);
        ev.set(N::Email, s(email));
        if let Some(traits) = string_map(traits) {
            ev.set(N::Traits, traits);
        }
        profile::mark_lead(t);
        send::enqueue(t, ev, 0.0);
    });
}

/// `closeloop.track(name, props)`: a custom event.
#[inline(never)]
pub fn track(name: V, props: V) {
    with(|t| {
        if !t.records() || !name.is_str() || !name.truthy() || page::ignored() {
            return;
        }
        let ev = send::event(t, N::Track);
        ev.set(N::Name, js::trunc(name, MAX_FIELD_LEN));
        if let Some(props) = string_map(props) {
            ev.set(N::Props, props);
        }
        send::enqueue(t, ev, send::SEND_DELAY_MS);
    });
}

/// `closeloop.consent(bool)`: grant (store and send what was held) or revoke
/// (forget everything stored, record nothing more). Under Global Privacy Control
/// neither: GPC always wins, and nothing is stored, not even the answer.
#[inline(never)]
pub fn consent(on: V) {
    with(|t| {
        if t.gpc {
            return;
        }
        if on.truthy() {
            t.consent = Consent::Granted;
            t.store.persist = true;
            t.store.flush_memory();
            t.store.set(N::KeyConsent, N::One);
            remember_visitor(t);
            send::schedule(t, 0.0);
        } else {
            t.consent = Consent::Denied;
            t.store.persist = false;
            t.store.clear();
            ST.set(N::Vid, js::id(false));
            t.send = send::SendState::default();
            // The refusal itself is kept, so the next page does not track either.
            t.store.persist = true;
            t.store.set(N::KeyConsent, N::Zero);
            t.store.persist = false;
        }
    });
}

/// `closeloop.profile()`: the stored profile with the visitor id, which the loader
/// shapes into first and latest touch, top pages and sections, lead flag (see
/// [`profile::build`]); `null` before the tracker started.
#[inline(never)]
pub fn profile() -> V {
    let mut out = js::NULL;
    with(|t| out = profile::build(t));
    out
}

/// A plain object whose values are strings (numbers and booleans converted, other
/// values as JSON), at most `MAX_FIELDS` keys, each key and value cut to
/// `MAX_FIELD_LEN` bytes; `None` when it would be empty.
fn string_map(v: V) -> Option<V> {
    if !v.is_object() {
        return None;
    }
    let out = js::obj();
    let keys = js::keys(v);
    let mut n = 0;
    for i in 0..keys.len().min(MAX_FIELDS as u32) {
        let k = keys.at(i);
        let mut val = v.get(k);
        if !val.is_str() {
            val = js::json(val);
        }
        if k.truthy() && val.truthy() {
            out.set(js::trunc(k, MAX_FIELD_LEN), js::trunc(val, MAX_FIELD_LEN));
            n += 1;
        }
    }
    (n > 0).then_some(out)
}

/// On wasm32 a panic traps at once (`unreachable`): no message is formatted. The
/// loader catches the resulting `RuntimeError`, so the site never sees it.
#[cfg(all(closeloop_tracker_bin, target_arch = "wasm32"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
