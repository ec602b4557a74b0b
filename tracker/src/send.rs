//! Delivery: the bounded queue in first-party storage, batches to
//! `POST /v1/collect`, acknowledgements, backoff, and the lock tabs share.
//!
//! Rules:
//! - an event leaves the queue only when the edge's answer names it (accepted,
//!   duplicate, or rejected — a rejected event would be refused forever);
//! - `fetch` with `keepalive` normally, the body as `text/plain` (no CORS
//!   preflight); `navigator.sendBeacon` when the page is hidden or unloaded. A
//!   beacon's answer is unknown, so its events stay queued and are sent again later
//!   (the edge deduplicates by event id);
//! - failures back off exponentially (2 s to 5 min) with jitter; offline waits for
//!   the `online` event;
//! - one sender per site at a time: a lock (`_cl_l`, tab id + expiry) in storage,
//!   so two tabs never send the same event at the same moment;
//! - the queue keeps at most [`MAX_QUEUE`] events, dropping the oldest; the count
//!   is reported in the next acknowledged batch's `dropped`.

use crate::keys::MAX_EVENTS_PER_BATCH;
use crate::{js, keys, store, Consent, Tracker};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

/// Most events kept in the queue.
pub const MAX_QUEUE: usize = 500;
/// Largest batch body: keepalive requests and beacons are limited to 64 KiB.
pub const MAX_BODY: usize = 60_000;
/// Delay between an event and its batch, so events close together share one.
pub const SEND_DELAY_MS: f64 = 300.0;
/// How long a tab's send lock holds without an answer.
pub const LOCK_MS: f64 = 15_000.0;
/// After this long without an answer, a request is treated as failed.
pub const REQUEST_TIMEOUT_MS: f64 = 20_000.0;
const BACKOFF_MIN_MS: f64 = 2_000.0;
const BACKOFF_MAX_MS: f64 = 300_000.0;

/// This tab's delivery state.
#[derive(Default)]
pub struct SendState {
    /// Ids of the events in the request in flight.
    pub inflight: Vec<String>,
    /// The `dropped` count the request in flight reported.
    pub inflight_dropped: u32,
    /// When the request in flight started (0 when none).
    pub inflight_at: f64,
    /// Current backoff (0 after a success).
    pub backoff: f64,
    /// No request before this time.
    pub retry_at: f64,
    /// When the pending timer fires (0 when none).
    pub timer_at: f64,
    /// The last `created_at` given to an event of this tab.
    pub last_created: f64,
}

/// A new event of type `ty` on the current page: id, type, time, URL, referrer.
/// `created_at` is strictly increasing within a tab (two events in one millisecond
/// are 1 ms apart), so the queue and the edge keep the order they happened in.
pub fn event(t: &mut Tracker, ty: &str) -> JsValue {
    let ev = js::obj();
    js::set_str(&ev, keys::ID, &js::random_id());
    js::set_str(&ev, keys::TYPE, ty);
    let created = js::now().max(t.send.last_created + 1.0);
    t.send.last_created = created;
    js::set(&ev, keys::CREATED_AT, &JsValue::from_f64(created));
    js::set_str(&ev, keys::URL, &t.page.url);
    if !t.page.referrer.is_empty() {
        js::set_str(&ev, keys::REFERRER, &t.page.referrer);
    }
    ev
}

/// Appends `ev` to the queue (dropping the oldest beyond [`MAX_QUEUE`]) and
/// schedules a send in `delay` ms. Without consent the queue lives in memory.
pub fn enqueue(t: &mut Tracker, ev: JsValue, delay: f64) {
    if put(t, &ev) {
        bound(t);
        schedule(t, delay);
    }
}

/// Stores `ev` in the queue: one `setItem` of its own key (in memory without
/// consent; nothing after a refusal). Returns whether it was queued.
///
/// Test hook (issue 13's fault runs): when the page defines
/// `window.__closeloop_log` (an array, before the tag), the id of every event
/// queued here is pushed into it, so a test can compare what the tracker created
/// with what the edge stored. Every event goes through here; without the global
/// it is one property read.
pub fn put(t: &mut Tracker, ev: &JsValue) -> bool {
    if t.consent == Consent::Denied {
        return false;
    }
    let mut key = String::from(store::EVENT);
    key.push_str(&js::get_str(ev, keys::ID));
    t.store.set(&key, &js::stringify(ev));
    js::call(
        &js::get(&js::global(), "__closeloop_log"),
        "push",
        &[js::get(ev, keys::ID)],
    );
    true
}

/// Keeps the queue within [`MAX_QUEUE`] events, dropping the oldest and counting
/// them for the next batch's `dropped`; returns how many events are queued.
pub fn bound(t: &mut Tracker) -> usize {
    let n = t.store.keys(store::EVENT).len();
    if n <= MAX_QUEUE {
        return n;
    }
    let q = queue(t);
    let extra = q.len().saturating_sub(MAX_QUEUE);
    for e in q.iter().take(extra) {
        remove_event(t, &js::get_str(e, keys::ID));
    }
    let total = stored_dropped(t).saturating_add(extra as u32);
    t.store.set(store::DROPPED, &js::num_str(f64::from(total)));
    n - extra
}

/// The queued events, oldest first (by `created_at`).
pub fn queue(t: &Tracker) -> Vec<JsValue> {
    let mut q: Vec<(f64, JsValue)> = t
        .store
        .keys(store::EVENT)
        .iter()
        .filter_map(|k| {
            let ev = js::parse(&t.store.get(k)?);
            ev.is_object()
                .then(|| (js::get_num(&ev, keys::CREATED_AT), ev))
        })
        .collect();
    // Insertion sort: queues are short, and the standard sorts cost kilobytes.
    // (`get_mut` of a pair: indexing would link a panic message and location.)
    for i in 1..q.len() {
        let mut j = i;
        while let Some([a, b]) = q.get_mut(j.wrapping_sub(1)..=j) {
            if a.0 <= b.0 {
                break;
            }
            core::mem::swap(a, b);
            j -= 1;
        }
    }
    q.into_iter().map(|(_, e)| e).collect()
}

fn remove_event(t: &mut Tracker, id: &str) {
    let mut key = String::from(store::EVENT);
    key.push_str(id);
    t.store.remove(&key);
}

fn stored_dropped(t: &Tracker) -> u32 {
    t.store
        .get(store::DROPPED)
        .and_then(|s| js::str_num(&s))
        .map(|n| n as u32)
        .unwrap_or(0)
}

/// Makes sure a send happens within `delay` ms.
pub fn schedule(t: &mut Tracker, delay: f64) {
    let at = js::now() + delay;
    if t.send.timer_at > 0.0 && t.send.timer_at <= at {
        return;
    }
    t.send.timer_at = at;
    js::call(&t.io, "timer", &[JsValue::from_f64(delay)]);
}

/// Who holds the lock and until when.
fn lock_holder(t: &Tracker) -> Option<(String, f64)> {
    let v = t.store.get(store::LOCK)?;
    let (tab, until) = js::split_once(&v, b' ')?;
    Some((tab.to_string(), js::str_num(until)?))
}

/// Whether another tab holds a live lock.
fn locked_by_other(t: &Tracker, now: f64) -> bool {
    matches!(lock_holder(t), Some((tab, until)) if tab != t.tab && until > now)
}

fn release_lock(t: &mut Tracker) {
    if matches!(lock_holder(t), Some((tab, _)) if tab == t.tab) {
        t.store.remove(store::LOCK);
    }
}

/// Sends what is queued: as a beacon when `beacon` (the page is going away), else
/// with `fetch` when no request is in flight, the browser is online, the backoff has
/// passed and no other tab holds the lock.
pub fn flush(t: &mut Tracker, beacon: bool) {
    let now = js::now();
    if !beacon && t.send.timer_at <= now {
        t.send.timer_at = 0.0;
    }
    if t.consent != Consent::Granted {
        return;
    }
    if beacon {
        send_beacon(t, now);
        return;
    }
    if !t.send.inflight.is_empty() {
        if now - t.send.inflight_at < REQUEST_TIMEOUT_MS {
            return;
        }
        t.send.inflight.clear();
    }
    let navigator = js::get(&js::global(), "navigator");
    if js::get(&navigator, "onLine").as_bool() == Some(false) {
        return;
    }
    if now < t.send.retry_at {
        let wait = t.send.retry_at - now;
        schedule(t, wait);
        return;
    }
    let q = queue(t);
    if q.is_empty() {
        return;
    }
    if locked_by_other(t, now) {
        let wait = 500.0 + js_sys::Math::random() * 1_000.0;
        schedule(t, wait);
        return;
    }
    let mut lock = t.tab.clone();
    lock.push(' ');
    lock.push_str(&js::num_str(now + LOCK_MS));
    t.store.set(store::LOCK, &lock);
    let dropped = stored_dropped(t);
    let Some((body, ids)) = batch(t, &q, &[], dropped, now) else {
        release_lock(t);
        return;
    };
    t.send.inflight = ids;
    t.send.inflight_dropped = dropped;
    t.send.inflight_at = now;
    let endpoint = JsValue::from_str(&t.cfg.endpoint);
    if js::try_call(&t.io, "post", &[endpoint, JsValue::from_str(&body)]).is_err() {
        on_failure(t);
    }
}

/// The page is going away: send the queue (less what is in flight) with
/// `sendBeacon`. The events stay queued until a later acknowledged send.
fn send_beacon(t: &mut Tracker, now: f64) {
    if locked_by_other(t, now) {
        return;
    }
    let q = queue(t);
    let skip = t.send.inflight.clone();
    // The beacon never reports `dropped`: its answer is unknown, so the count
    // would be reported twice.
    if let Some((body, _)) = batch(t, &q, &skip, 0, now) {
        let navigator = js::get(&js::global(), "navigator");
        let url = JsValue::from_str(&t.cfg.endpoint);
        js::call(&navigator, "sendBeacon", &[url, JsValue::from_str(&body)]);
    }
}

/// Builds a batch body from the oldest queued events not in `skip`: at most
/// `MAX_EVENTS_PER_BATCH` and [`MAX_BODY`] bytes. Returns the body and the ids.
fn batch(
    t: &Tracker,
    q: &[JsValue],
    skip: &[String],
    dropped: u32,
    now: f64,
) -> Option<(String, Vec<String>)> {
    let pending: Vec<JsValue> = q
        .iter()
        .filter(|e| {
            let id = js::get_str(e, keys::ID);
            !skip.contains(&id)
        })
        .take(MAX_EVENTS_PER_BATCH)
        .cloned()
        .collect();
    let mut n = pending.len();
    while n > 0 {
        let events: Array = pending.iter().take(n).collect();
        let b = js::obj();
        js::set_str(&b, keys::SITE_ID, &t.cfg.site);
        js::set_str(&b, keys::VISITOR_ID, &t.vid);
        js::set(&b, keys::SENT_AT, &JsValue::from_f64(now));
        if dropped > 0 {
            js::set(&b, keys::DROPPED, &JsValue::from_f64(f64::from(dropped)));
        }
        js::set(&b, keys::EVENTS, &events);
        let body = js::stringify(&b);
        if body.len() <= MAX_BODY || n == 1 {
            let ids = pending
                .iter()
                .take(n)
                .map(|e| js::get_str(e, keys::ID))
                .collect();
            return Some((body, ids));
        }
        n /= 2;
    }
    None
}

/// The edge's answer (`CollectResponse` JSON): remove every event it names from
/// the queue, settle the `dropped` count it received, keep its touch.
pub fn on_ack(t: &mut Tracker, text: &str) {
    let v = js::parse(text);
    let results = js::get(&v, keys::RESULTS);
    if !Array::is_array(&results) {
        on_failure(t);
        return;
    }
    let results: Array = results.unchecked_into();
    let mut done: Vec<String> = Vec::new();
    for r in results.iter() {
        let status = js::get_str(&r, keys::STATUS);
        if status == keys::ACCEPTED || status == keys::DUPLICATE || status == keys::REJECTED {
            done.push(js::get_str(&r, keys::ID));
        }
    }
    if t.consent == Consent::Granted {
        for id in &done {
            remove_event(t, id);
        }
        let dropped = stored_dropped(t).saturating_sub(t.send.inflight_dropped);
        if dropped == 0 {
            t.store.remove(store::DROPPED);
        } else {
            t.store
                .set(store::DROPPED, &js::num_str(f64::from(dropped)));
        }
        crate::profile::touch(t, &js::get(&v, keys::TOUCH));
    }
    t.send.inflight.clear();
    t.send.inflight_dropped = 0;
    t.send.backoff = 0.0;
    t.send.retry_at = 0.0;
    release_lock(t);
    if !t.store.keys(store::EVENT).is_empty() {
        schedule(t, 0.0);
    }
}

/// A request failed (network, 4xx/5xx, unreadable answer): back off with jitter.
pub fn on_failure(t: &mut Tracker) {
    t.send.inflight.clear();
    t.send.inflight_dropped = 0;
    release_lock(t);
    // Not `clamp`: it asserts min <= max with a formatted panic message.
    #[allow(clippy::manual_clamp)]
    let next = (t.send.backoff * 2.0)
        .max(BACKOFF_MIN_MS)
        .min(BACKOFF_MAX_MS);
    t.send.backoff = next;
    // "Equal jitter": half fixed, half random, so tabs and visitors spread out.
    let wait = next / 2.0 + js_sys::Math::random() * next / 2.0;
    t.send.retry_at = js::now() + wait;
    schedule(t, wait);
}
