//! The visitor's profile kept in first-party storage for `closeloop.profile()`:
//! first and latest entry (landing URL, referrer, time) with the channel, source,
//! medium and campaign the edge classified (learnt from its acknowledgement, so no
//! referrer list ships to the browser), page view counts per path, and whether the
//! visitor became a lead.
//!
//! Stored as one JSON object under `_cl_p`: `f`/`l` first/latest entry
//! (`u` URL, `r` referrer, `t` time), `ft`/`lt` first/latest touch from the edge,
//! `pg` views per path (at most [`MAX_PAGES`]), `lead`, `lu`/`lv` the last page
//! view's URL and time, `la` the last activity time. It is acknowledged data: when
//! storage is full, its page counts and then all of it give way to unsent events
//! (see `send::put`).

use crate::js::{self, num, ST, UNDEFINED, V};
use crate::keys::{MAX_URL_LEN, N, TOUCH_FIELDS};
use crate::Tracker;

/// Paths whose view counts are kept (the least viewed is forgotten first).
pub const MAX_PAGES: u32 = 100;
/// A session ends after this long without activity (the design's 30 minutes).
pub const SESSION_MS: f64 = 30.0 * 60.0 * 1000.0;
/// Query keys that mark a tagged (campaign) entry: `utm_*` plus the ad click ids
/// of the design's entry list.
const CLICK_IDS: [&str; 9] = [
    "gclid",
    "gbraid",
    "wbraid",
    "dclid",
    "msclkid",
    "fbclid",
    "ttclid",
    "li_fat_id",
    "twclid",
];

fn load(t: &Tracker) -> V {
    js::parse_object(t.store.get(N::KeyProfile))
}

fn save(t: &mut Tracker, p: V) {
    t.store.set(N::KeyProfile, js::json(p));
}

/// Whether `url` is the page viewed last, less than a session ago (a reload).
pub fn was_last_view(t: &Tracker, url: V, now: f64) -> bool {
    let p = load(t);
    p.get(N::Lu).is(url) && now - p.get(N::Lv).num().unwrap_or(0.0) < SESSION_MS
}

/// The host of an absolute URL (`""` when there is none).
pub fn host(url: &str) -> &str {
    let rest = js::find(url, "://")
        .and_then(|i| url.get(i + 3..))
        .unwrap_or("");
    let end = rest
        .bytes()
        .position(|b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    rest.get(..end).unwrap_or("")
}

/// Whether the landing `url` carries campaign tags or click ids.
pub fn tagged(url: &str) -> bool {
    let query = js::split_once(url, b'?').map_or("", |(_, q)| q);
    let query = js::parts(query, b'#').next().unwrap_or("");
    js::parts(query, b'&').any(|pair| {
        let key = js::parts(pair, b'=').next().unwrap_or("");
        key.starts_with("utm_") || CLICK_IDS.contains(&key)
    })
}

/// Whether this load starts from outside the site: tagged, or an external referrer.
pub fn external(url: &str, referrer: &str) -> bool {
    tagged(url) || (!referrer.is_empty() && host(referrer) != host(url))
}

/// A page load: a new entry when the last activity is more than a session ago or
/// the visitor comes from outside again (the edge's session rule, approximated to
/// decide which entry `profile()` shows; the edge's answer is authoritative).
fn entry(p: V, url: V, referrer: V, now: f64) {
    let last = p.get(N::La).num().unwrap_or(0.0);
    let (mut ub, mut rb) = ([0u8; MAX_URL_LEN], [0u8; MAX_URL_LEN]);
    let ext = external(
        js::read(url, &mut ub).unwrap_or(""),
        js::read(referrer, &mut rb).unwrap_or(""),
    );
    if last == 0.0 || now - last > SESSION_MS || ext {
        let e = js::obj();
        e.set(N::U, url);
        e.set(N::R, referrer);
        e.set(N::T, num(now));
        if !p.get(N::F).is_object() {
            p.set(N::F, e);
        }
        p.set(N::L, e);
    }
}

/// A page view of `path` (full URL `url`) at `now`.
fn view(p: V, url: V, path: V, now: f64) {
    let mut pages = p.get(N::Pg);
    if !pages.is_object() {
        pages = js::obj();
        p.set(N::Pg, pages);
    }
    let n = pages.get(path).num().unwrap_or(0.0);
    pages.set(path, num(n + 1.0));
    let paths = js::keys(pages);
    if paths.len() > MAX_PAGES {
        // Forget the least viewed other path (`undefined` rather than `delete`:
        // `JSON.stringify` leaves the key out when the profile is saved).
        let mut least: Option<(V, f64)> = None;
        for i in 0..paths.len() {
            let k = paths.at(i);
            let c = pages.get(k).num().unwrap_or(0.0);
            if !k.is(path) && least.is_none_or(|(_, l)| c < l) {
                least = Some((k, c));
            }
        }
        if let Some((k, _)) = least {
            pages.set(k, UNDEFINED);
        }
    }
    let now = num(now);
    p.set(N::Lu, url);
    p.set(N::Lv, now);
    p.set(N::La, now);
}

/// The landing page viewed at `at`: its entry and its view, in one read and one
/// write (the page's URL and referrer, which no navigation changed before this).
pub fn landed(t: &mut Tracker, at: f64) {
    let p = load(t);
    let url = ST.get(N::Url);
    entry(p, url, ST.get(N::Referrer), at);
    view(p, url, ST.get(N::Landed), at);
    save(t, p);
}

/// A page view of `path` (full URL `url`): an SPA navigation.
pub fn viewed(t: &mut Tracker, url: V, path: V) {
    let p = load(t);
    view(p, url, path, js::now());
    save(t, p);
}

/// The visitor became a lead (a form with an email, or `identify`).
pub fn mark_lead(t: &mut Tracker) {
    let p = load(t);
    p.set(N::Lead, num(1.0));
    save(t, p);
}

/// The edge's acknowledgement carried the visitor's latest touch.
pub fn touch(t: &mut Tracker, ack: V) {
    if !ack.get(N::Channel).truthy() {
        return;
    }
    let tt = js::obj();
    for k in TOUCH_FIELDS {
        let v = ack.get(k);
        if v.is_str() {
            tt.set(k, v);
        }
    }
    let p = load(t);
    if !p.get(N::Ft).is_object() {
        p.set(N::Ft, tt);
    }
    p.set(N::Lt, tt);
    save(t, p);
}

/// Storage is full: forget the page counts (the profile's history), keeping the
/// touches. Returns whether there were any.
pub fn forget_pages(t: &mut Tracker) -> bool {
    let p = load(t);
    if !p.get(N::Pg).is_object() {
        return false;
    }
    p.set(N::Pg, UNDEFINED);
    save(t, p);
    true
}

/// What the wasm gives `closeloop.profile()`: the stored profile object (see the
/// module doc) plus `vid`, the visitor id. The loader (`tracker/js/loader.js`,
/// `shape`) turns it into what sites read: `{visitor_id, first_touch,
/// latest_touch, top_pages: [{path, views}], top_sections: [{section, views}],
/// pageviews, is_lead}` (top 5 by views, then by name; a section is a path's first
/// segment, `/blog/post-1` → `/blog`). Sorting and building objects is far
/// smaller in JS than in the wasm.
pub fn build(t: &Tracker) -> V {
    let p = load(t);
    p.set(N::Vid, ST.get(N::Vid));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_urls() {
        assert_eq!(host("https://www.google.com/search?q=x"), "www.google.com");
        assert_eq!(host("https://example.com"), "example.com");
        assert_eq!(host("http://127.0.0.1:8080?x=1"), "127.0.0.1:8080");
        assert_eq!(host("not a url"), "");
    }

    #[test]
    fn tagged_entries() {
        assert!(tagged(
            "https://a.com/?utm_source=newsletter&utm_medium=email"
        ));
        assert!(tagged("https://a.com/p?x=1&gclid=abc"));
        assert!(!tagged("https://a.com/p?x=1#utm_source=no"));
        assert!(!tagged("https://a.com/p?butm_source=x"));
        assert!(!tagged("https://a.com/"));
    }

    #[test]
    fn external_entries() {
        assert!(external("https://a.com/", "https://www.google.com/"));
        assert!(!external("https://a.com/x", "https://a.com/"));
        assert!(!external("https://a.com/x", ""));
        assert!(external("https://a.com/x?fbclid=1", "https://a.com/"));
    }
}
