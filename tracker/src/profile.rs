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

use crate::{js, keys, store, Tracker};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use js_sys::{Array, Object};
use wasm_bindgen::{JsCast, JsValue};

/// Paths whose view counts are kept (the least viewed is forgotten first).
pub const MAX_PAGES: usize = 100;
/// How many pages and sections `profile()` lists.
pub const TOP: usize = 5;
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
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or("");
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
pub fn entry(t: &mut Tracker, url: &str, referrer: &str, now: f64) {
    let p = load(t);
    let last = js::get_num(&p, "la");
    if last == 0.0 || now - last > SESSION_MS || external(url, referrer) {
        let e = js::obj();
        js::set_str(&e, "u", url);
        js::set_str(&e, "r", referrer);
        js::set(&e, "t", &JsValue::from_f64(now));
        if !js::get(&p, "f").is_object() {
            js::set(&p, "f", &e);
        }
        js::set(&p, "l", &e);
    }
    js::set(&p, "la", &JsValue::from_f64(now));
    save(t, &p);
}

/// A page view of `path` (full URL `url`).
pub fn viewed(t: &mut Tracker, url: &str, path: &str) {
    let p = load(t);
    let mut pages = js::get(&p, "pg");
    if !pages.is_object() {
        pages = js::obj();
        js::set(&p, "pg", &pages);
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
            let _ = js_sys::Reflect::delete_property(
                pages.unchecked_ref::<Object>(),
                &JsValue::from_str(least),
            );
        }
    }
    let now = JsValue::from_f64(js::now());
    js::set_str(&p, "lu", url);
    js::set(&p, "lv", &now);
    js::set(&p, "la", &now);
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

/// The section of a path: its first segment (`/blog/post-1` → `/blog`).
pub fn section(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    match rest.find('/') {
        Some(i) => path.get(..i + 1).unwrap_or(path),
        None => path,
    }
}

/// The top [`TOP`] by views (most first, then by name). A selection, not a
/// sort: the standard sorts cost kilobytes in the download.
fn top(mut v: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let mut out = Vec::with_capacity(TOP);
    while out.len() < TOP {
        let best = v
            .iter()
            .enumerate()
            .reduce(|a, b| {
                if b.1 .1 > a.1 .1 || (b.1 .1 == a.1 .1 && b.1 .0 < a.1 .0) {
                    b
                } else {
                    a
                }
            })
            .map(|(i, _)| i);
        match best {
            Some(i) => out.push(v.swap_remove(i)),
            None => break,
        }
    }
    out
}

fn rows(v: Vec<(String, f64)>, key: &str) -> Array {
    top(v)
        .into_iter()
        .map(|(k, n)| {
            let row = js::obj();
            js::set_str(&row, key, &k);
            js::set(&row, "views", &JsValue::from_f64(n));
            row
        })
        .collect()
}

/// A touch for `profile()`: the entry (`landing_url`, `referrer`, `at`) merged with
/// the edge's classification (`channel`, `source`, `medium`, `campaign`); `null`
/// when neither is known.
fn touch_out(entry: &JsValue, ack: &JsValue) -> JsValue {
    if !entry.is_object() && !ack.is_object() {
        return JsValue::NULL;
    }
    let o = js::obj();
    for k in keys::TOUCH_FIELDS {
        let v = js::get(ack, k);
        let v = if v.is_undefined() { JsValue::NULL } else { v };
        js::set(&o, k, &v);
    }
    js::set(&o, "landing_url", &js::get(entry, "u"));
    js::set(&o, "referrer", &js::get(entry, "r"));
    js::set(&o, "at", &js::get(entry, "t"));
    o
}

/// What `closeloop.profile()` returns:
/// `{visitor_id, first_touch, latest_touch, top_pages: [{path, views}],
/// top_sections: [{section, views}], pageviews, is_lead}`.
pub fn build(t: &Tracker) -> JsValue {
    let p = load(t);
    let pages = counts(&js::get(&p, "pg"));
    let total: f64 = pages.iter().map(|(_, n)| n).sum();
    let mut sections: Vec<(String, f64)> = Vec::new();
    for (path, n) in &pages {
        let s = section(path);
        match sections.iter_mut().find(|(k, _)| k == s) {
            Some(e) => e.1 += n,
            None => sections.push((s.to_string(), *n)),
        }
    }
    let o = js::obj();
    js::set_str(&o, "visitor_id", &t.vid);
    js::set(
        &o,
        "first_touch",
        &touch_out(&js::get(&p, "f"), &js::get(&p, "ft")),
    );
    js::set(
        &o,
        "latest_touch",
        &touch_out(&js::get(&p, "l"), &js::get(&p, "lt")),
    );
    js::set(&o, "top_pages", &rows(pages, "path"));
    js::set(&o, "top_sections", &rows(sections, "section"));
    js::set(&o, "pageviews", &JsValue::from_f64(total));
    js::set(
        &o,
        "is_lead",
        &JsValue::from_bool(js::get(&p, "lead").is_truthy()),
    );
    o
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

    #[test]
    fn sections_are_first_segments() {
        assert_eq!(section("/blog/post-1"), "/blog");
        assert_eq!(section("/blog/"), "/blog");
        assert_eq!(section("/pricing"), "/pricing");
        assert_eq!(section("/"), "/");
    }

    #[test]
    fn top_sorts_by_views_then_name() {
        let v = vec![
            ("/b".to_string(), 2.0),
            ("/a".to_string(), 2.0),
            ("/c".to_string(), 5.0),
            ("/d".to_string(), 1.0),
            ("/e".to_string(), 1.0),
            ("/f".to_string(), 1.0),
        ];
        let got: Vec<String> = top(v).into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, vec!["/c", "/a", "/b", "/d", "/e"]);
    }
}
