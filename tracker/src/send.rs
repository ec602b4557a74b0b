//! Delivery: the bounded queue in first-party storage, batches to
//! `POST /v1/collect`, acknowledgements, backoff, the lock tabs share, and what is
//! given up when something must be (always counted, never silently).
//!
//! Rules:
//! - an event leaves the queue only when the edge's answer names it (accepted,
//!   duplicate, or rejected — a rejected event would be refused forever);
//! - `fetch` with `keepalive` (the loader's `post`), the body as `text/plain` (no
//!   CORS preflight); `navigator.sendBeacon` when the page is hidden or unloaded. A
//!   beacon's answer is unknown, so its events stay queued and are sent again later
//!   (the edge deduplicates by event id);
//! - a request without an answer after [`REQUEST_TIMEOUT_MS`] is aborted by the
//!   loader and counts as failed; failures back off exponentially (2 s to 5 min)
//!   with jitter; offline waits for the `online` event;
//! - a batch refused with a permanent 4xx (any but 408 and 429: the envelope —
//!   site, origin, visitor id, body — is refused, and sending it again cannot help)
//!   is sent [`MAX_REFUSALS`] times in all, counted across page loads in `_cl_r`;
//!   then its events are dropped and counted;
//! - one sender per site at a time: a lock (`_cl_l`, tab id + expiry) in storage,
//!   held [`LOCK_MS`], longer than a request can last, so that it never expires
//!   under a request in flight; a page that goes away (`pagehide`) gives it up, so
//!   the next page sends at once;
//! - the queue keeps at most [`MAX_QUEUE`] events, dropping the oldest. When storage
//!   is full, acknowledged data makes room first (the profile's page counts, then
//!   the profile), then the oldest unsent events;
//! - every event dropped is counted in `_cl_d` and the count is sent as the next
//!   batch's `dropped`, and taken off once the edge acknowledged that batch.

use crate::js::{self, num, CFG, GLOBAL, NO, ST, UNDEFINED, V};
use crate::keys::{MAX_EVENTS_PER_BATCH, N};
use crate::{profile, Consent, Tracker};

/// Most events kept in the queue.
pub const MAX_QUEUE: u32 = 500;
/// Largest batch body in bytes: keepalive requests and beacons are limited to 64 KiB.
pub const MAX_BODY: usize = 60_000;
/// Delay between an event and its batch, so events close together share one.
pub const SEND_DELAY_MS: f64 = 300.0;
/// After this long without an answer, the loader aborts a request: it failed.
pub const REQUEST_TIMEOUT_MS: f64 = 15_000.0;
/// How long a tab's send lock holds: longer than a request can last (with room for
/// its failure to be handled), so that no other tab sends while one is in flight.
pub const LOCK_MS: f64 = REQUEST_TIMEOUT_MS + 5_000.0;
/// How many times a batch refused for good (a permanent 4xx) is sent in all.
pub const MAX_REFUSALS: u32 = 3;
const BACKOFF_MIN_MS: f64 = 2_000.0;
const BACKOFF_MAX_MS: f64 = 300_000.0;

// The lock must outlive the request it guards (issue 12: a 15 s lock against a 20 s
// timeout let two tabs send at once).
const _: () = assert!(LOCK_MS > REQUEST_TIMEOUT_MS);

/// This tab's delivery state (the ids in flight are in [`ST`]'s `inflight`).
#[derive(Default)]
pub struct SendState {
    /// Whether a request is in flight.
    pub busy: bool,
    /// The `dropped` count the request in flight reported.
    pub inflight_dropped: u32,
    /// When the request in flight started.
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
pub fn event(t: &mut Tracker, ty: N) -> V {
    let ev = js::obj();
    ev.set(N::Id, js::id(true));
    ev.set(N::Type, ty);
    let created = js::now().max(t.send.last_created + 1.0);
    t.send.last_created = created;
    ev.set(N::CreatedAt, num(created));
    ev.set(N::Url, ST.get(N::Url));
    let referrer = ST.get(N::Referrer);
    if referrer.truthy() {
        ev.set(N::Referrer, referrer);
    }
    ev
}

/// Queues `ev` (see [`put`]), keeps the queue bounded and schedules a send in
/// `delay` ms.
pub fn enqueue(t: &mut Tracker, ev: V, delay: f64) {
    if put(t, ev) {
        bound(t);
        schedule(t, delay);
    }
}

/// The storage key of the event with id `id`: `_cl_e.<id>`.
fn key_of(id: V) -> V {
    V::from(N::KeyEvent).cat(id, NO)
}

/// Stores `ev` in the queue: one `setItem` of its own key (in memory without
/// consent; nothing after a refusal). When storage is full, makes room (see the
/// module doc) and tries again; what still does not fit lives in memory, sent from
/// there while the page lasts. Returns whether it was queued.
pub fn put(t: &mut Tracker, ev: V) -> bool {
    if t.consent == Consent::Denied {
        return false;
    }
    let key = key_of(ev.get(N::Id));
    let value = js::json(ev);
    // Bounded: each round removes one stored item.
    for _ in 0..MAX_QUEUE + 2 {
        if t.store.set(key, value) || !t.store.persist || !make_room(t) {
            break;
        }
    }
    true
}

/// Storage refused a write: frees some of it, acknowledged data first. Returns
/// whether anything was freed.
fn make_room(t: &mut Tracker) -> bool {
    if t.store.stored(N::KeyProfile) {
        if !profile::forget_pages(t) {
            t.store.remove(N::KeyProfile);
        }
        return true;
    }
    let q = queue(t);
    for i in 0..q.len() {
        let k = key_of(q.at(i).get(N::Id));
        if t.store.stored(k) {
            t.store.remove(k);
            add(t, N::KeyDropped, 1);
            return true;
        }
    }
    false
}

/// Keeps the queue within [`MAX_QUEUE`] events, dropping the oldest and counting
/// them for the next batch's `dropped`; returns how many events are queued.
pub fn bound(t: &mut Tracker) -> u32 {
    let n = t.store.keys(N::KeyEvent).len();
    if n <= MAX_QUEUE {
        return n;
    }
    let extra = n - MAX_QUEUE;
    let q = queue(t);
    for i in 0..extra {
        t.store.remove(key_of(q.at(i).get(N::Id)));
    }
    add(t, N::KeyDropped, extra);
    MAX_QUEUE
}

/// The queued events (an array), oldest first by `created_at`.
pub fn queue(t: &Tracker) -> V {
    let q = js::arr();
    let keys = t.store.keys(N::KeyEvent);
    for i in 0..keys.len() {
        let ev = js::parse(t.store.get(keys.at(i)));
        if ev.is_object() {
            q.push(ev);
        }
    }
    js::sort(q, N::CreatedAt);
    q
}

/// A stored count (`_cl_d`, `_cl_r`), 0 when absent.
fn count(t: &Tracker, k: N) -> u32 {
    js::str_num(t.store.get(k)).map_or(0, |n| n as u32)
}

/// Sets a stored count; 0 removes it.
fn set_count(t: &mut Tracker, k: N, n: u32) {
    if n == 0 {
        t.store.remove(k);
    } else {
        t.store.set(k, js::json(num(f64::from(n))));
    }
}

/// Adds `n` to a stored count.
fn add(t: &mut Tracker, k: N, n: u32) {
    let total = count(t, k).saturating_add(n);
    set_count(t, k, total);
}

/// Makes sure a send happens within `delay` ms.
pub fn schedule(t: &mut Tracker, delay: f64) {
    let at = js::now() + delay;
    if t.send.timer_at > 0.0 && t.send.timer_at <= at {
        return;
    }
    t.send.timer_at = at;
    js::timer(delay);
}

/// The lock: `[tab id, expiry ms]` (JSON), or `undefined`.
fn lock(t: &Tracker) -> V {
    js::parse(t.store.get(N::KeyLock))
}

/// Whether another tab holds a live lock.
pub fn locked_by_other(t: &Tracker, now: f64) -> bool {
    let l = lock(t);
    !l.at(0).is(ST.get(N::Tab)) && l.at(1).num().is_some_and(|until| until > now)
}

/// Gives the lock up if this tab holds it.
pub fn release_lock(t: &mut Tracker) {
    if lock(t).at(0).is(ST.get(N::Tab)) {
        t.store.remove(N::KeyLock);
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
    if t.send.busy {
        if now - t.send.inflight_at < REQUEST_TIMEOUT_MS {
            return;
        }
        // The loader's abort never came (timers of hidden pages are throttled):
        // the request is given up here.
        t.send.busy = false;
        ST.set(N::Inflight, UNDEFINED);
    }
    let online = GLOBAL.get(N::Navigator).get(N::OnLine);
    if !online.truthy() && !online.is(UNDEFINED) {
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
        let wait = 500.0 + js::random() * 1_000.0;
        schedule(t, wait);
        return;
    }
    let l = js::arr();
    l.push(ST.get(N::Tab));
    l.push(num(now + LOCK_MS));
    t.store.set(N::KeyLock, js::json(l));
    let dropped = count(t, N::KeyDropped);
    let Some((body, ids)) = batch(q, dropped, now) else {
        release_lock(t);
        return;
    };
    ST.set(N::Inflight, ids);
    t.send.busy = true;
    t.send.inflight_dropped = dropped;
    t.send.inflight_at = now;
    js::post(CFG.get(N::Endpoint), body, REQUEST_TIMEOUT_MS);
}

/// The page is going away: send the queue (less what is in flight) with
/// `sendBeacon`. The events stay queued until a later acknowledged send.
fn send_beacon(t: &mut Tracker, now: f64) {
    if locked_by_other(t, now) {
        return;
    }
    let q = queue(t);
    let skip = ST.get(N::Inflight);
    let pending = js::arr();
    for i in 0..q.len() {
        let e = q.at(i);
        if !(t.send.busy && skip.has(e.get(N::Id))) {
            pending.push(e);
        }
    }
    // The beacon never reports `dropped`: its answer is unknown, so the count
    // would be reported twice.
    if let Some((body, _)) = batch(pending, 0, now) {
        GLOBAL
            .get(N::Navigator)
            .call(N::SendBeacon, CFG.get(N::Endpoint), body);
    }
}

/// Builds a batch body from the oldest of the events `q`: at most
/// `MAX_EVENTS_PER_BATCH` and [`MAX_BODY`] bytes. Returns the body and the ids.
fn batch(q: V, dropped: u32, now: f64) -> Option<(V, V)> {
    let mut n = q.len().min(MAX_EVENTS_PER_BATCH as u32);
    while n > 0 {
        let events = js::arr();
        let ids = js::arr();
        for i in 0..n {
            let e = q.at(i);
            events.push(e);
            ids.push(e.get(N::Id));
        }
        let b = js::obj();
        b.set(N::SiteId, CFG.get(N::Site));
        b.set(N::VisitorId, ST.get(N::Vid));
        b.set(N::SentAt, num(now));
        if dropped > 0 {
            b.set(N::Dropped, num(f64::from(dropped)));
        }
        b.set(N::Events, events);
        let body = js::json(b);
        if body.utf8_len() <= MAX_BODY || n == 1 {
            return Some((body, ids));
        }
        n /= 2;
    }
    None
}

/// The edge's answer (`CollectResponse` JSON): remove every event it names from
/// the queue, settle the `dropped` count it received, keep its touch.
pub fn on_ack(t: &mut Tracker, text: V) {
    let v = js::parse(text);
    let results = v.get(N::Results);
    if !results.is_array() {
        on_failure(t, 0.0);
        return;
    }
    if t.consent == Consent::Granted {
        for i in 0..results.len() {
            let r = results.at(i);
            let status = r.get(N::Status);
            if status.is(N::Accepted) || status.is(N::Duplicate) || status.is(N::Rejected) {
                t.store.remove(key_of(r.get(N::Id)));
            }
        }
        let dropped = count(t, N::KeyDropped).saturating_sub(t.send.inflight_dropped);
        set_count(t, N::KeyDropped, dropped);
        set_count(t, N::KeyRefused, 0);
        profile::touch(t, v.get(N::Touch));
    }
    t.send.busy = false;
    t.send.inflight_dropped = 0;
    t.send.backoff = 0.0;
    t.send.retry_at = 0.0;
    release_lock(t);
    if !t.store.keys(N::KeyEvent).is_empty() {
        schedule(t, 0.0);
    }
}

/// Whether an HTTP status refuses the batch for good: a 4xx but 408 (timeout) and
/// 429 (too many requests), which ask to come back later.
pub fn permanent(status: f64) -> bool {
    (400.0..500.0).contains(&status) && status != 408.0 && status != 429.0
}

/// A request failed with `status` (0: no answer, a network error or a timeout;
/// else a non-2xx status): a permanent refusal is counted and, the last time,
/// its events dropped; then back off with jitter.
pub fn on_failure(t: &mut Tracker, status: f64) {
    if permanent(status) && t.send.busy && t.consent == Consent::Granted {
        let refused = count(t, N::KeyRefused) + 1;
        if refused >= MAX_REFUSALS {
            let sent = ST.get(N::Inflight);
            for i in 0..sent.len() {
                t.store.remove(key_of(sent.at(i)));
            }
            add(t, N::KeyDropped, sent.len());
            set_count(t, N::KeyRefused, 0);
        } else {
            set_count(t, N::KeyRefused, refused);
        }
    }
    t.send.busy = false;
    t.send.inflight_dropped = 0;
    release_lock(t);
    // Not `clamp`: it asserts min <= max with a formatted panic message.
    #[allow(clippy::manual_clamp)]
    let next = (t.send.backoff * 2.0)
        .max(BACKOFF_MIN_MS)
        .min(BACKOFF_MAX_MS);
    t.send.backoff = next;
    // "Equal jitter": half fixed, half random, so tabs and visitors spread out.
    let wait = next / 2.0 + js::random() * next / 2.0;
    t.send.retry_at = js::now() + wait;
    schedule(t, wait);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a 408 or 429 asks to come back later; any other 4xx refuses the
    /// batch for good; 5xx and no answer (0) are failures to retry.
    #[test]
    fn which_statuses_refuse_for_good() {
        for st in [400.0, 401.0, 403.0, 404.0, 413.0, 422.0, 499.0] {
            assert!(permanent(st), "{st}");
        }
        for st in [0.0, 200.0, 399.0, 408.0, 429.0, 500.0, 503.0] {
            assert!(!permanent(st), "{st}");
        }
    }

    /// A request lasts at most the timeout; the lock taken for it must still hold
    /// then, or a second tab starts sending the same events (issue 12's fault run).
    #[test]
    fn the_lock_outlives_a_request() {
        let taken_at = 1_000.0;
        let lock_until = taken_at + LOCK_MS;
        let last_answer_at = taken_at + REQUEST_TIMEOUT_MS;
        assert!(lock_until > last_answer_at);
    }
}
