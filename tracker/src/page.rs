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

use crate::js::{self, CFG, GLOBAL, NO, ST, V};
use crate::keys::{self, N};
use crate::{profile, send, Tracker};

fn location() -> V {
    GLOBAL.get(N::Location)
}

/// The current path key and path+query key (strings), with the hash under hash
/// routing.
fn current_keys(hash_routing: bool) -> (V, V) {
    let loc = location();
    let path = loc.get(N::Pathname);
    let hash = if hash_routing { loc.get(N::Hash) } else { NO };
    (path.cat(hash, NO), path.cat(loc.get(N::Search), hash))
}

/// The page was loaded: queue its page view (unless it is a reload of the last page
/// viewed, or an ignored path); its entry and view reach the profile later, in
/// `settle` ([`Tracker::landed`]). The landing URL is the loader's (read before any
/// script could rewrite it). The page's URL, referrer and keys are kept in
/// [`ST`]: `url`, `referrer`, `path` (`replaceState` compares it) and `full` (the
/// other navigations compare it).
pub fn landing(t: &mut Tracker) {
    let (path, full) = current_keys(t.hash_routing);
    let url = CFG.get(N::Url);
    ST.set(N::Url, url);
    let referrer = GLOBAL.get(N::Document).get(N::Referrer);
    ST.set(N::Referrer, js::trunc(referrer, keys::MAX_URL_LEN));
    ST.set(N::Path, path);
    ST.set(N::Full, full);
    t.ignored = ignored();
    if t.ignored || !t.records() {
        return;
    }
    let now = js::now();
    let reload = GLOBAL
        .get(N::Performance)
        .call(N::GetEntriesByType, N::Navigation, NO)
        .at(0)
        .get(N::Type)
        .is(N::Reload);
    if reload && profile::was_last_view(t, url, now) {
        return;
    }
    let ev = view_event(t);
    if send::put(t, ev) {
        ST.set(N::Landed, location().get(N::Pathname));
        t.landed = now;
    }
}

/// A history change (see [`crate::cl`] for `kind`).
pub fn navigate(t: &mut Tracker, kind: u32) {
    if kind == 3 && !t.hash_routing {
        return;
    }
    let (path, full) = current_keys(t.hash_routing);
    let changed = if kind == 1 {
        !path.is(ST.get(N::Path))
    } else {
        !full.is(ST.get(N::Full))
    };
    ST.set(N::Path, path);
    ST.set(N::Full, full);
    let loc = location();
    let href = loc.get(N::Href);
    let previous = ST.get(N::Url);
    // Same page (a `replaceState` that only rewrote the query): later events carry
    // the new URL, no page view.
    ST.set(N::Url, href);
    if !changed {
        return;
    }
    // An SPA view's referrer is the previous page, unless that was ignored.
    if !t.ignored {
        ST.set(N::Referrer, previous);
    }
    t.ignored = ignored();
    if !t.ignored && t.records() {
        let ev = view_event(t);
        profile::viewed(t, href, loc.get(N::Pathname));
        send::enqueue(t, ev, send::SEND_DELAY_MS);
    }
}

/// A page view event of the current page.
fn view_event(t: &mut Tracker) -> V {
    let ev = send::event(t, N::Pageview);
    let title = GLOBAL.get(N::Document).get(N::Title);
    if title.truthy() {
        ev.set(N::Title, js::trunc(title, keys::MAX_FIELD_LEN));
    }
    ev
}

/// Whether the current path matches one of `data-ignore-paths` (the loader's
/// `cfg.ignore` array).
pub fn ignored() -> bool {
    let globs = CFG.get(N::Ignore);
    let n = globs.len();
    if n == 0 {
        return false;
    }
    let mut pb = [0u8; keys::MAX_URL_LEN];
    let path = js::read(location().get(N::Pathname), &mut pb).unwrap_or("");
    (0..n).any(|i| {
        let mut gb = [0u8; 256];
        glob(js::read(globs.at(i), &mut gb).unwrap_or(""), path)
    })
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (including `/`) and everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = s.get(si) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&pc) if pc == c => {
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
    p.get(pi..).unwrap_or(&[]).iter().all(|&c| c == b'*')
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
