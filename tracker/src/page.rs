//! Page views: the landing page, single-page-app navigations, reloads, and the
//! paths the site asked to ignore.
//!
//! Rules:
//! - `pushState`, `popstate` (and `hashchange` with `data-hash-routing`) count a
//!   page view when the path or query changed; `replaceState` only when the path
//!   changed (sites use it to strip `utm_*` tags or save state, which is no new
//!   page). With hash routing the hash is part of the path.
//! - An SPA page view's referrer is the previous page's URL (same-site, so it
//!   never starts a new session at the edge); a load's is `document.referrer`.
//! - A reload (`PerformanceNavigationTiming.type == "reload"`) of the URL whose
//!   page view was recorded last, within the 30-minute session window, is not
//!   counted again.

use crate::{js, keys, profile, send, Tracker};
use alloc::string::String;
use wasm_bindgen::JsValue;

/// The page the visitor is on, as the tracker last counted it.
#[derive(Default)]
pub struct Page {
    /// Full URL (events on the page carry it).
    pub url: String,
    /// Referrer of this page view.
    pub referrer: String,
    /// Path (plus hash with hash routing): `replaceState` compares this.
    pub path: String,
    /// Path and query (plus hash with hash routing): the other navigations compare this.
    pub full: String,
    /// Whether this page is on an ignored path (its URL is never sent, not even as
    /// the next page's referrer).
    pub ignored: bool,
}

/// The landing page view, queued by [`landing`] and counted in the profile by
/// [`crate::settle`] (after the start-up budget) with the URL and referrer of
/// [`Tracker::page`], which no navigation changes before that (the loader holds
/// them back until the tracker has settled).
pub struct Landed {
    /// Its path (`location.pathname`).
    pub path: String,
    /// When it was viewed.
    pub at: f64,
}

fn location() -> JsValue {
    js::get(&js::global(), "location")
}

/// The current path key and path+query key.
fn current_keys(hash_routing: bool) -> (String, String) {
    let loc = location();
    let mut path = js::get_str(&loc, "pathname");
    if hash_routing {
        path.push_str(&js::get_str(&loc, "hash"));
    }
    let mut full = js::get_str(&loc, "pathname");
    full.push_str(&js::get_str(&loc, "search"));
    if hash_routing {
        full.push_str(&js::get_str(&loc, "hash"));
    }
    (path, full)
}

/// `performance.getEntriesByType("navigation")[0].type` (`navigate`, `reload`,
/// `back_forward`, `prerender`), or `""`.
fn navigation_type() -> String {
    let perf = js::get(&js::global(), "performance");
    let entries = js::call(
        &perf,
        "getEntriesByType",
        &[JsValue::from_str("navigation")],
    );
    js::get_str(&js::get(&entries, "0"), "type")
}

/// The page was loaded: queue its page view (unless it is a reload of the last page
/// viewed, or an ignored path); its entry and view reach the profile later
/// ([`Tracker::landed`]).
pub fn landing(t: &mut Tracker, landing_url: String) {
    let href = js::get_str(&location(), "href");
    let (path, full) = current_keys(t.cfg.hash_routing);
    let referrer = js::get_str(&js::get(&js::global(), "document"), "referrer");
    t.page = Page {
        url: if landing_url.is_empty() {
            href
        } else {
            landing_url
        },
        referrer: js::truncate(referrer, keys::MAX_URL_LEN),
        path,
        full,
        ignored: false,
    };
    t.page.ignored = ignored(t);
    if t.page.ignored {
        return;
    }
    let now = js::now();
    if navigation_type() == "reload" && profile::was_last_view(t, &t.page.url, now) {
        return;
    }
    let ev = view_event(t);
    if send::put(t, &ev) {
        t.landed = Some(Landed {
            path: js::get_str(&location(), "pathname"),
            at: now,
        });
    }
}

/// A history change (see [`crate::nav`] for `kind`).
pub fn navigate(t: &mut Tracker, kind: u32) {
    if kind == 3 && !t.cfg.hash_routing {
        return;
    }
    let (path, full) = current_keys(t.cfg.hash_routing);
    let changed = if kind == 1 {
        path != t.page.path
    } else {
        full != t.page.full
    };
    t.page.path = path;
    t.page.full = full;
    let href = js::get_str(&location(), "href");
    if !changed {
        // Same page (a `replaceState` that only rewrote the query): later events
        // carry the new URL, no page view.
        t.page.url = href;
        return;
    }
    let previous = core::mem::replace(&mut t.page.url, href);
    if !t.page.ignored {
        t.page.referrer = previous;
    }
    t.page.ignored = ignored(t);
    if !t.page.ignored {
        pageview(t);
    }
}

/// A page view event of the current page.
fn view_event(t: &mut Tracker) -> JsValue {
    let ev = send::event(t, keys::PAGEVIEW);
    let title = js::get_str(&js::get(&js::global(), "document"), "title");
    if !title.is_empty() {
        js::set_str(&ev, keys::TITLE, &js::truncate(title, keys::MAX_FIELD_LEN));
    }
    ev
}

/// Records a page view of the current page (an SPA navigation).
fn pageview(t: &mut Tracker) {
    let ev = view_event(t);
    let (url, path) = (t.page.url.clone(), js::get_str(&location(), "pathname"));
    profile::viewed(t, &url, &path);
    send::enqueue(t, ev, send::SEND_DELAY_MS);
}

/// Whether the current path matches one of `data-ignore-paths`.
pub fn ignored(t: &Tracker) -> bool {
    if t.cfg.ignore.is_empty() {
        return false;
    }
    let path = js::get_str(&location(), "pathname");
    t.cfg.ignore.iter().any(|g| glob(g, &path))
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (including `/`) and everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_prefixes_and_exact_paths() {
        assert!(glob("/admin/*", "/admin/users"));
        assert!(glob("/admin/*", "/admin/users/7/edit"));
        assert!(glob("/admin/*", "/admin/"));
        assert!(!glob("/admin/*", "/admin"));
        assert!(!glob("/admin/*", "/blog/admin/x"));
        assert!(glob("/checkout", "/checkout"));
        assert!(!glob("/checkout", "/checkout/done"));
        assert!(glob("*/preview", "/blog/post-1/preview"));
        assert!(glob("/a*c", "/abbbc"));
        assert!(!glob("/a*c", "/abbbd"));
        assert!(glob("*", ""));
        assert!(!glob("", "/x"));
    }
}
