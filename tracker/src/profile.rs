//! The visitor's profile kept in first-party storage for `closeloop.profile()`:
//! first and latest entry (landing URL, referrer, time) with the channel, source,
//! medium and campaign the edge classified (learnt from its acknowledgement, so no
//! referrer list ships to the browser), page view counts per path, and whether the
//! visitor became a lead.
//!
//! Stored as one JSON object under `_cl_p`: `f`/`l` first/latest entry
//! (`u` URL, `r` referrer, `t` time), `ft`/`lt` first/latest touch from the edge,
//! `pg` views per path (at most [`MAX_PAGES`]), `lead`, `lu`/`lv` the last page
//! view's URL and time, `la` the last activity time.

use crate::page::Landed;
use crate::{js, keys, store, Tracker};
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::Object;
use wasm_bindgen::{JsCast, JsValue};

/// Paths whose view counts are kept (the least viewed is forgotten first).
pub const MAX_PAGES: usize = 100;
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

fn load(t: &Tracker) -> JsValue {
    js::parse_object(t.store.get(store::PROFILE))
}

fn save(t: &mut Tracker, p: &JsValue) {
    t.store.set(store::PROFILE, &js::stringify(p));
}

/// Whether `url` is the page viewed last, less than a session ago (a reload).
pub fn was_last_view(t: &Tracker, url: &str, now: f64) -> bool {
    let p = load(t);
    js::get_str(&p, "lu") == url && now - js::get_num(&p, "lv") < SESSION_MS
}

/// The host of an absolute URL (`""` when there is none).
pub fn host(url: &str) -> &str {
    let rest = js::after(url, "://").unwrap_or("");
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
fn entry(p: &JsValue, url: &str, referrer: &str, now: f64) {
    let last = js::get_num(p, "la");
    if last == 0.0 || now - last > SESSION_MS || external(url, referrer) {
        let e = js::obj();
        js::set_str(&e, "u", url);
        js::set_str(&e, "r", referrer);
        js::set(&e, "t", &JsValue::from_f64(now));
        if !js::get(p, "f").is_object() {
            js::set(p, "f", &e);
        }
        js::set(p, "l", &e);
    }
}

/// A page view of `path` (full URL `url`) at `now`.
fn view(p: &JsValue, url: &str, path: &str, now: f64) {
    let mut pages = js::get(p, "pg");
    if !pages.is_object() {
        pages = js::obj();
        js::set(p, "pg", &pages);
    }
    let n = js::get_num(&pages, path);
    js::set(&pages, path, &JsValue::from_f64(n + 1.0));
    let counts = counts(&pages);
    if counts.len() > MAX_PAGES {
        if let Some((least, _)) =
            counts
                .iter()
                .filter(|(k, _)| k != path)
                .reduce(|a, b| if b.1 < a.1 { b } else { a })
        {
            // `undefined` rather than `delete` (one import less): `JSON.stringify`
            // leaves the key out when the profile is saved.
            js::set(&pages, least, &JsValue::UNDEFINED);
        }
    }
    let now = JsValue::from_f64(now);
    js::set_str(p, "lu", url);
    js::set(p, "lv", &now);
    js::set(p, "la", &now);
}

/// The landing page: its entry and its view, in one read and one write.
pub fn landed(t: &mut Tracker, l: &Landed) {
    let p = load(t);
    entry(&p, &t.page.url, &t.page.referrer, l.at);
    view(&p, &t.page.url, &l.path, l.at);
    save(t, &p);
}

/// A page view of `path` (full URL `url`): an SPA navigation.
pub fn viewed(t: &mut Tracker, url: &str, path: &str) {
    let p = load(t);
    view(&p, url, path, js::now());
    save(t, &p);
}

/// The visitor became a lead (a form with an email, or `identify`).
pub fn mark_lead(t: &mut Tracker) {
    let p = load(t);
    js::set(&p, "lead", &JsValue::TRUE);
    save(t, &p);
}

/// The edge's acknowledgement carried the visitor's latest touch.
pub fn touch(t: &mut Tracker, ack: &JsValue) {
    if js::get_str(ack, "channel").is_empty() {
        return;
    }
    let tt = js::obj();
    for k in keys::TOUCH_FIELDS {
        let v = js::get(ack, k);
        if v.as_string().is_some() {
            js::set(&tt, k, &v);
        }
    }
    let p = load(t);
    if !js::get(&p, "ft").is_object() {
        js::set(&p, "ft", &tt);
    }
    js::set(&p, "lt", &tt);
    save(t, &p);
}

/// `(path, views)` pairs of the `pg` object.
fn counts(pages: &JsValue) -> Vec<(String, f64)> {
    if !pages.is_object() {
        return Vec::new();
    }
    Object::keys(pages.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| {
            let k = k.as_string()?;
            let n = js::get_num(pages, &k);
            Some((k, n))
        })
        .collect()
}

/// What the wasm gives `closeloop.profile()`: the stored profile object (see the
/// module doc) plus `vid`, the visitor id. The loader (`tracker/js/loader.js`,
/// `shape`) turns it into what sites read: `{visitor_id, first_touch,
/// latest_touch, top_pages: [{path, views}], top_sections: [{section, views}],
/// pageviews, is_lead}` (top 5 by views, then by name; a section is a path's first
/// segment, `/blog/post-1` → `/blog`). Sorting and building objects is far
/// smaller in JS than in the wasm.
pub fn build(t: &Tracker) -> JsValue {
    let p = load(t);
    js::set_str(&p, "vid", &t.vid);
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
