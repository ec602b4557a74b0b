//! Bot user agents, from maintained lists: [`check`] says whether a user agent is a
//! bot and, if so, why (which list, which pattern).
//!
//! The lists (`core/data/bots/`, compiled in by `build/agents.rs`; refreshed from the
//! package registries by `cargo xtask refresh-lists`):
//! - `crawler-user-agents` (MIT, PyPI): one pattern per named crawler, tool or
//!   monitoring service, each with its URL;
//! - `isbot` (Unlicense, npm): the generic patterns of the `isbot` project (words such
//!   as `bot`, `crawl`, `headless`, libraries' default user agents);
//! - `closeloop` (`extra.txt`): the few this project adds, each with its reason.
//!
//! A user agent is a bot when any pattern of any list matches it (case-insensitively;
//! crawler-user-agents' patterns case-sensitively, as that list's own `is_crawler`
//! does by default: `NING\/` is a crawler, not Thunderbird's `Lightning/`),
//! after what names a person's software or hardware has been blanked out:
//! - the allow-list of in-app browsers ([`IN_APP`], `data/bots/in-app.txt`): people
//!   reading a page inside Instagram or Snapchat are people, while the same companies'
//!   link-preview fetchers still say `bot`, `preview` or `externalhit` elsewhere in
//!   their user agent;
//! - an Android browser's device model and build id (`(Linux; Android 13; Spider 8
//!   Build/TP1A...)`: phones are sold as "Spider 8", "M bot tab 10" or "Radar Deluxe",
//!   and a crawler that spoofs a phone adds its name elsewhere, e.g. `(compatible;
//!   Googlebot/2.1; ...)`);
//! - the TV platform tokens of `data/devices.txt` (`HbbTV/1.1.1;CE-HTML/1.0;` reads as
//!   isbot's "`name/1.0;` is a library" otherwise); and on TV and feature-phone user
//!   agents (`data/devices.txt`'s `tv` and `feature` rules), whose capability tokens
//!   (`Java/ASVM/1.1`, `MMS/LG-MMS-V1.0/1.2`) look like libraries' names, only the named
//!   lists count, not isbot's generic patterns.
//!
//! An empty user agent is a bot (every browser sends one).
//!
//! The reason reported is the first matching pattern of the first list in the order
//! above, so that a named crawler is reported by name rather than by isbot's `bot`.
//!
//! Matching: the lists' literal patterns (most of them) go into one Aho-Corasick
//! automaton over the lower-cased user agent, the anchored ones are prefix / suffix
//! tests, the rest are one `RegexSet` (RE2 syntax, ASCII classes as in JavaScript), and
//! isbot's few look-around patterns are a core expression checked against the literal
//! alternatives it must not follow or precede. That `RegexSet` also holds the in-app
//! browsers and `data/devices.txt`'s rules, so a parse scans the user agent once for
//! all of them (`Scan`). Everything is compiled once per process
//! ([`warm`]); a browser's user agent then costs a few microseconds.

use std::sync::OnceLock;

/// One list compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotListInfo {
    /// Its name, as used in reasons (`crawler-user-agents`, `closeloop`, `isbot`).
    pub name: &'static str,
    /// The registry it was taken from (`PyPI`, `npm`) or the file for our own.
    pub registry: &'static str,
    /// The package version taken.
    pub version: &'static str,
    /// Its licence.
    pub licence: &'static str,
    /// When it was refreshed (`YYYY-MM-DD`).
    pub retrieved: &'static str,
    /// How many patterns it has.
    pub patterns: usize,
}

/// How one pattern is matched (decided at build time).
#[derive(Debug)]
pub(crate) enum PatternKind {
    /// A plain lower-case string, maybe anchored.
    Literal {
        text: &'static str,
        start: bool,
        end: bool,
    },
    /// A regular expression (RE2 syntax, case-insensitive, ASCII classes).
    Regex(&'static str),
    /// `core`, not right after any of `before`, not right before any of `after`.
    Look {
        core: &'static str,
        before: &'static [&'static str],
        after: &'static [&'static str],
    },
}

/// One pattern of one list.
#[derive(Debug)]
pub(crate) struct BotPattern {
    /// Index into [`BOT_LISTS`].
    pub(crate) list: usize,
    /// The pattern as the list publishes it.
    pub(crate) pattern: &'static str,
    pub(crate) kind: PatternKind,
}

include!(concat!(env!("OUT_DIR"), "/agents.rs"));

/// Why a user agent was flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotReason {
    /// The list (`crawler-user-agents`, `isbot`, `closeloop`).
    pub list: &'static str,
    /// The pattern that matched, as the list publishes it (`(empty user agent)` for none).
    pub pattern: &'static str,
}

impl BotReason {
    /// `list:pattern`, as stored and shown to the site owner.
    pub fn code(&self) -> String {
        format!("{}:{}", self.list, self.pattern)
    }
}

/// The reason given for a request without a user agent.
pub const EMPTY: BotReason = BotReason {
    list: "closeloop",
    pattern: "(empty user agent)",
};

struct Matcher {
    /// Unanchored literals, and the pattern index of each.
    ac: aho_corasick::AhoCorasick,
    ac_ids: Vec<usize>,
    /// Anchored literals: (text, at start, at end, pattern index).
    anchored: Vec<(&'static str, bool, bool, usize)>,
    /// One scan of the lower-cased user agent for every regular expression a parse
    /// needs: the lists' regular expressions, the look-around patterns' cores (a
    /// superset of what those match), then the in-app browsers (from `in_app_base`),
    /// then the device rules of `data/devices.txt` (from `device_base`). All are
    /// case-insensitive, so the lower-cased text gives the same matches.
    set: regex::bytes::RegexSet,
    set_ids: Vec<SetEntry>,
    in_app_base: usize,
    device_base: usize,
    looks: Vec<(
        regex::bytes::Regex,
        &'static [&'static str],
        &'static [&'static str],
        usize,
    )>,
    in_app: Vec<(&'static str, regex::bytes::Regex)>,
    /// crawler-user-agents' patterns as that list matches them, case-sensitively (its
    /// own `is_crawler` default): a literal's text, a regex compiled without `(?i)`.
    /// Matches found over the lower-cased text are confirmed against these.
    exact: Vec<Exact>,
    /// The device-model slot of an Android browser's platform (`(Linux; Android 13;
    /// SM-S911B Build/TP1A...)`) and the TV platform tokens of `data/devices.txt`.
    hardware: Vec<regex::bytes::Regex>,
}

/// How a pattern's match found case-insensitively is confirmed.
#[derive(Debug)]
enum Exact {
    /// Any match counts (isbot's and our lists are case-insensitive).
    Any,
    /// The matched bytes of the original user agent must be this text.
    Text(String),
    /// This case-sensitive expression must match the original user agent.
    Regex(regex::bytes::Regex),
}

/// A literal pattern's text with its escapes removed (`Googlebot\/` → `Googlebot/`).
fn unescaped(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// What a member of [`Matcher::set`] stands for.
#[derive(Debug, Clone, Copy)]
enum SetEntry {
    /// A regular-expression pattern (index into [`BOT_PATTERNS`]).
    Pattern(usize),
    /// A look-around pattern's core (index into [`Matcher::looks`]): a match still has
    /// to pass its look-arounds.
    Look(usize),
}

fn build_regex(p: &str) -> Option<regex::bytes::Regex> {
    regex::bytes::RegexBuilder::new(p)
        .case_insensitive(true)
        .unicode(false)
        .build()
        .ok()
}

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let mut lits = Vec::new();
        let mut ac_ids = Vec::new();
        let mut anchored = Vec::new();
        let mut res = Vec::new();
        let mut set_ids = Vec::new();
        let mut looks = Vec::new();
        let exact: Vec<Exact> = BOT_PATTERNS
            .iter()
            .map(|p| {
                if BOT_LISTS[p.list].name != "crawler-user-agents" {
                    return Exact::Any;
                }
                match &p.kind {
                    PatternKind::Literal { .. } => {
                        let body = p.pattern.strip_prefix('^').unwrap_or(p.pattern);
                        let body = match body.strip_suffix('$') {
                            Some(b) if !b.ends_with('\\') => b,
                            _ => body,
                        };
                        Exact::Text(unescaped(body))
                    }
                    PatternKind::Regex(r) => regex::bytes::RegexBuilder::new(r)
                        .unicode(false)
                        .build()
                        .map_or(Exact::Any, Exact::Regex),
                    PatternKind::Look { .. } => Exact::Any,
                }
            })
            .collect();
        for (i, p) in BOT_PATTERNS.iter().enumerate() {
            match &p.kind {
                PatternKind::Literal {
                    text,
                    start: false,
                    end: false,
                } => {
                    lits.push(*text);
                    ac_ids.push(i);
                }
                PatternKind::Literal { text, start, end } => {
                    anchored.push((*text, *start, *end, i))
                }
                PatternKind::Regex(r) => {
                    // build.rs checked the syntax; a pattern the engine still refuses
                    // (none today) is skipped rather than stopping every request.
                    if build_regex(r).is_some() {
                        res.push(*r);
                        set_ids.push(SetEntry::Pattern(i));
                    }
                }
                PatternKind::Look {
                    core,
                    before,
                    after,
                } => {
                    if let Some(re) = build_regex(core) {
                        looks.push((re, *before, *after, i));
                    }
                }
            }
        }
        for (k, (_, _, _, i)) in looks.iter().enumerate() {
            if let PatternKind::Look { core, .. } = &BOT_PATTERNS[*i].kind {
                res.push(*core);
                set_ids.push(SetEntry::Look(k));
            }
        }
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            // contiguous NFA: a search as fast as the DFA's here (~0.7 µs for a browser's
            // user agent; the non-contiguous NFA took ~1.5 µs), built in a fraction of
            // the DFA's time (once per isolate: 16 ms for everything vs 30+ ms natively)
            .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
            .build(&lits)
            .unwrap_or_else(|_| {
                aho_corasick::AhoCorasick::new(Vec::<&str>::new()).expect("an empty automaton")
            });
        // Every expression here is ASCII: compiled without Unicode tables (a worker
        // pays for this once per isolate, in V8).
        // each compiled once: the set scans for the ones that build, in the same order
        let in_app_base = res.len();
        let in_app: Vec<(&'static str, regex::bytes::Regex)> = IN_APP
            .iter()
            .filter_map(|(name, source)| {
                let re = build_regex(source)?;
                res.push(*source);
                Some((*name, re))
            })
            .collect();
        let device_base = res.len();
        // (every device rule compiles: build/agents.rs checked them, and the set is
        // all or nothing)
        res.extend(DEVICE_RULES.iter().map(|(_, r)| *r));
        let set = regex::bytes::RegexSetBuilder::new(&res)
            .case_insensitive(true)
            .unicode(false)
            .size_limit(64 << 20)
            .dfa_size_limit(8 << 20)
            .build()
            .unwrap_or_else(|_| regex::bytes::RegexSet::empty());
        let mut hardware: Vec<regex::bytes::Regex> = [
            // "(Linux; U; Android 7.1.2; en-us; M bot tab 10 Build/N2G47H)": the model
            // and build id name hardware and firmware, never a client
            r"\(Linux; ?(?:U; ?)?Android[^;)]*; ?(?:[a-z]{2}[-_][a-z]{2}; ?)?([^;)]+)",
        ]
        .into_iter()
        .filter_map(build_regex)
        .collect();
        hardware.extend(
            DEVICE_RULES
                .iter()
                .filter(|(class, _)| *class == "tv")
                .filter_map(|(_, r)| build_regex(r)),
        );
        Matcher {
            ac,
            hardware,
            in_app_base,
            device_base,
            ac_ids,
            anchored,
            set,
            set_ids,
            looks,
            in_app,
            exact,
        }
    })
}

/// Compiles the lists now (the first [`check`] would otherwise pay for it).
pub fn warm() {
    let _ = matcher();
}

/// One scan of a user agent (trimmed) by every regular expression of the lists and
/// rules: what [`check`], [`in_app_browser`] and `agent::parse` read.
pub(crate) struct Scan {
    /// The user agent, lower-cased.
    lower: Vec<u8>,
    /// Which members of [`Matcher::set`] matched.
    hits: regex::bytes::SetMatches,
}

impl Scan {
    /// Scans `ua` (already trimmed).
    pub(crate) fn new(ua: &str) -> Scan {
        let lower = ua.as_bytes().to_ascii_lowercase();
        let hits = matcher().set.matches(&lower);
        Scan { lower, hits }
    }

    /// The class of the first rule of `data/devices.txt` that matches (`feature` as is).
    pub(crate) fn device_rule(&self) -> Option<&'static str> {
        let m = matcher();
        self.hits
            .iter()
            .find(|k| *k >= m.device_base)
            .and_then(|k| DEVICE_RULES.get(k - m.device_base))
            .map(|(class, _)| *class)
    }

    /// A TV, console or feature-phone user agent (`data/devices.txt` classes `tv`,
    /// `console`, `feature`): only the named lists count on them (`Wii Internet
    /// Channel/1.0;` is a console's browser, not isbot's `name/1.0;` library).
    fn platform_tokens(&self) -> bool {
        let m = matcher();
        self.hits.iter().filter(|k| *k >= m.device_base).any(|k| {
            DEVICE_RULES
                .get(k - m.device_base)
                .is_some_and(|(class, _)| matches!(*class, "tv" | "console" | "feature"))
        })
    }

    fn in_app(&self) -> bool {
        let m = matcher();
        self.hits
            .iter()
            .any(|k| (m.in_app_base..m.device_base).contains(&k))
    }
}

/// The in-app browser a user agent comes from, per `data/bots/in-app.txt`: its name and
/// version (when the app's token carries one).
pub fn in_app_browser(ua: &str) -> Option<(&'static str, Option<String>)> {
    let ua = ua.trim();
    in_app_scanned(ua, &Scan::new(ua))
}

/// [`in_app_browser`] of a scanned user agent.
pub(crate) fn in_app_scanned(ua: &str, scan: &Scan) -> Option<(&'static str, Option<String>)> {
    let m = matcher();
    // the first entry that names a browser (`-`: a token only blanked, a plug-in's)
    let (name, re) = scan
        .hits
        .iter()
        .filter(|k| (m.in_app_base..m.device_base).contains(k))
        .filter_map(|k| m.in_app.get(k - m.in_app_base))
        .find(|(name, _)| *name != "-")?;
    let version = re
        .captures(ua.as_bytes())
        .and_then(|c| c.get(1))
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(|v| v.trim_end_matches('.').to_string())
        .filter(|v| !v.is_empty());
    Some((*name, version))
}

/// Whether `ua` is a bot, and why. `None`: a person, as far as the lists can tell.
pub fn check(ua: &str) -> Option<BotReason> {
    let ua = ua.trim();
    check_scanned(ua, &Scan::new(ua))
}

/// [`check`] of a scanned user agent (trimmed).
pub(crate) fn check_scanned(ua: &str, scan: &Scan) -> Option<BotReason> {
    if ua.is_empty() {
        return Some(EMPTY);
    }
    let m = matcher();
    // Most user agents are people's and match nothing: one pass over the lower-cased
    // text says so. Blanking out in-app tokens, device models and TV tokens can only
    // take matches away, so it is done (and the reason looked for) only after a hit.
    if !any(m, scan) {
        return None;
    }
    let (hay, orig) = blanked(m, ua, scan);
    // a TV's or feature phone's capability tokens are not a library's name: isbot's
    // generic patterns do not count there, the named lists do
    let named_only = scan.platform_tokens();
    best(m, &hay, &orig, named_only).map(|i| {
        let p = &BOT_PATTERNS[i];
        BotReason {
            list: BOT_LISTS[p.list].name,
            pattern: p.pattern,
        }
    })
}

/// Every list with a pattern that matches `ua` (after the in-app allow-list), in
/// [`BOT_LISTS`] order: how the benchmark measures each list on its own.
pub fn matching_lists(ua: &str) -> Vec<&'static str> {
    let ua = ua.trim();
    if ua.is_empty() {
        return vec![EMPTY.list];
    }
    let m = matcher();
    let scan = Scan::new(ua);
    let (hay, orig) = blanked(m, ua, &scan);
    let named_only = scan.platform_tokens();
    let mut hit = [false; 3];
    visit(m, &hay, &orig, |i| {
        if !(named_only && BOT_LISTS[BOT_PATTERNS[i].list].name == "isbot") {
            hit[BOT_PATTERNS[i].list] = true;
        }
    });
    BOT_LISTS
        .iter()
        .zip(hit)
        .filter(|(_, h)| *h)
        .map(|(l, _)| l.name)
        .collect()
}

/// The user agent, lower-cased and as sent, with what names a person's software or
/// hardware rather than a client blanked out: in-app browsers' own tokens, an Android
/// browser's device model and build id, TV platform tokens (`HbbTV`, `CE-HTML`).
fn blanked(m: &Matcher, ua: &str, scan: &Scan) -> (Vec<u8>, Vec<u8>) {
    let mut hay = scan.lower.clone();
    let mut orig = ua.as_bytes().to_vec();
    let mut blank = |r: std::ops::Range<usize>| {
        for b in &mut hay[r.clone()] {
            *b = b' ';
        }
        for b in &mut orig[r] {
            *b = b' ';
        }
    };
    if scan.in_app() {
        for (_, re) in &m.in_app {
            for found in re.find_iter(ua.as_bytes()) {
                blank(found.range());
            }
        }
    }
    for re in &m.hardware {
        for c in re.captures_iter(ua.as_bytes()) {
            if let Some(g) = c.get(1).or_else(|| c.get(0)) {
                blank(g.range());
            }
        }
    }
    (hay, orig)
}

/// The lowest pattern index that matches the lower-cased `hay` (patterns are in the
/// order reasons are preferred).
fn best(m: &Matcher, hay: &[u8], orig: &[u8], named_only: bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    visit(m, hay, orig, |i: usize| {
        if named_only && BOT_LISTS[BOT_PATTERNS[i].list].name == "isbot" {
            return;
        }
        if best.is_none_or(|b| i < b) {
            best = Some(i);
        }
    });
    best
}

/// Whether any pattern may match (the fast path: no reason looked for; a look-around
/// core matching without its look-arounds only sends the user agent to [`best`]).
fn any(m: &Matcher, scan: &Scan) -> bool {
    let hay = &scan.lower[..];
    let (first, last) = (hay.first(), hay.last());
    m.anchored.iter().any(|(text, start, end, _)| {
        let t = text.as_bytes();
        // one byte compared inline first: most prefixes differ from "mozilla/" at once
        if (*start && t.first() != first) || (*end && t.last() != last) {
            return false;
        }
        match (start, end) {
            (true, true) => hay == t,
            (true, false) => hay.starts_with(t),
            (false, true) => hay.ends_with(t),
            (false, false) => false,
        }
    }) || scan.hits.iter().any(|k| k < m.in_app_base)
        || m.ac.is_match(hay)
}

/// Calls `consider` with the index of every pattern that matches `hay`.
fn visit(m: &Matcher, hay: &[u8], orig: &[u8], mut consider: impl FnMut(usize)) {
    // a match at `r` of the lower-cased text, confirmed in the original's case where
    // the pattern's list matches case-sensitively
    let confirmed = |i: usize, r: std::ops::Range<usize>| match m.exact.get(i) {
        Some(Exact::Text(t)) => orig.get(r) == Some(t.as_bytes()),
        Some(Exact::Regex(re)) => re.is_match(orig),
        _ => true,
    };
    for (text, start, end, i) in &m.anchored {
        let t = text.as_bytes();
        let hit = match (start, end) {
            (true, true) => (hay == t).then_some(0..t.len()),
            (true, false) => hay.starts_with(t).then_some(0..t.len()),
            (false, true) => hay.ends_with(t).then(|| hay.len() - t.len()..hay.len()),
            (false, false) => None,
        };
        if hit.is_some_and(|r| confirmed(*i, r)) {
            consider(*i);
        }
    }
    if m.ac.is_match(hay) {
        for found in m.ac.find_overlapping_iter(hay) {
            if let Some(i) = m.ac_ids.get(found.pattern().as_usize()) {
                if confirmed(*i, found.range()) {
                    consider(*i);
                }
            }
        }
    }
    if m.set.is_match(hay) {
        for k in m.set.matches(hay).iter().take_while(|k| *k < m.in_app_base) {
            match m.set_ids.get(k) {
                Some(SetEntry::Pattern(i)) if confirmed(*i, 0..0) => consider(*i),
                Some(SetEntry::Look(l)) => {
                    if let Some((re, before, after, i)) = m.looks.get(*l) {
                        if look_matches(re, before, after, hay) {
                            consider(*i);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether `re` matches somewhere in `hay` not right after any of `before` and not right
/// before any of `after` (every start position is tried, as a backtracking engine would).
fn look_matches(re: &regex::bytes::Regex, before: &[&str], after: &[&str], hay: &[u8]) -> bool {
    let mut at = 0;
    while at <= hay.len() {
        let Some(found) = re.find_at(hay, at) else {
            return false;
        };
        let ok_before = !before
            .iter()
            .any(|b| hay[..found.start()].ends_with(b.as_bytes()));
        let ok_after = !after
            .iter()
            .any(|a| hay[found.end()..].starts_with(a.as_bytes()));
        if ok_before && ok_after {
            return true;
        }
        at = found.start() + 1;
    }
    false
}

/// How many patterns are compiled in, per list (for diagnostics and the docs).
pub fn lists() -> &'static [BotListInfo] {
    &BOT_LISTS
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    #[test]
    fn browsers_are_people() {
        assert_eq!(check(CHROME), None);
        assert_eq!(
            check("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"),
            None
        );
    }

    #[test]
    fn a_named_crawler_is_reported_by_name() {
        let r = check("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
            .expect("a bot");
        assert_eq!(r.list, "crawler-user-agents");
        assert_eq!(r.pattern, "Googlebot\\/");
        assert_eq!(r.code(), "crawler-user-agents:Googlebot\\/");
    }

    #[test]
    fn empty_is_a_bot() {
        assert_eq!(check("  "), Some(EMPTY));
    }

    #[test]
    fn look_around_patterns_follow_their_look_arounds() {
        // isbot: "(?<! cu)bots?(?:\b|_)" — "cubot" phones are not bots
        let cubot = "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
        assert_eq!(check(cubot), None);
        assert!(check("Mozilla/5.0 (compatible; examplebot/1.0)").is_some());
        // "google(?!(?:wv|app|/google| pixel))": the Google app is a person
        let gapp = "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 GoogleApp/14.46";
        assert_eq!(check(gapp), None);
    }

    #[test]
    fn in_app_browsers_are_people_and_their_fetchers_are_not() {
        let snap = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/12.63.0.40 (like Safari/8617.2.4.10.8, panda)";
        assert_eq!(check(snap), None);
        assert_eq!(
            in_app_browser(snap),
            Some(("Snapchat", Some("12.63.0.40".to_string())))
        );
        let preview = "Mozilla/5.0 (compatible; Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots)";
        assert!(check(preview).is_some());
        let fb = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.39.113;FBBV/543578389;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/545029474]";
        assert_eq!(check(fb), None);
        assert_eq!(in_app_browser(fb).map(|b| b.0), Some("Facebook"));
        assert!(
            check("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)")
                .is_some()
        );
    }

    #[test]
    fn crawler_user_agents_matches_case_sensitively_as_upstream_does() {
        // `NING\/` names the Ning crawler; Thunderbird's calendar add-on is `Lightning/`
        let tb = "Mozilla/5.0 (X11; Linux x86_64; rv:24.0) Gecko/20100101 Thunderbird/24.2.0 Lightning/2.6.4";
        assert_eq!(check(tb), None);
        assert_eq!(
            check("NING/1.0").map(|r| (r.list, r.pattern)),
            Some(("crawler-user-agents", "NING\\/"))
        );
        // an Android model slot written without spaces is still hardware, not a name
        let phone = "Mozilla/5.0 (Linux; U; Android 2.3;en-us; ViewSonic-ViewPad7e Build/ERE27) AppleWebKit/533.1 (KHTML, Like Gecko) Version/4.0 Mobile Safari/533.1";
        assert_eq!(check(phone), None);
    }

    #[test]
    fn apps_and_plug_ins_tokens_are_not_bot_names() {
        // issue 16: people's browsers that isbot's generic patterns flagged
        let baidu = "Mozilla/5.0 (Linux; U; Android 4.1.2; zh-cn; HS-E912S Build/JZO54K) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30 baiduboxapp/042_8.3_diordna_008_084/esnesiH_61_2.1.4_S219E-SH/7300017a/20C33EED|0";
        assert_eq!(check(baidu), None);
        assert_eq!(in_app_browser(baidu).map(|b| b.0), Some("Baidu App"));
        let sogou = "Mozilla/5.0 (Linux; Android 10; ZTE A2020 SP Build/QKQ1.200913.002; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/68.0.3440.106 Mobile Safari/537.36 AWP/2.0 SogouMSE,SogouMobileBrowser/6.5.11";
        assert_eq!(check(sogou), None);
        assert_eq!(
            in_app_browser(sogou),
            Some(("Sogou Mobile Browser", Some("6.5.11".to_string())))
        );
        let gplus = "Mozilla/5.0 (iPhone6,1; iPhone; U; CPU OS 7_0_4 like Mac OS X; ar_SA) com.google.GooglePlus/29676 (KHTML, like Gecko) Mobile/N51AP (gzip)";
        assert_eq!(check(gplus), None);
        let news = "Mozilla/5.0 (iPhone; CPU iPhone OS 10_0_2 like Mac OS X) AppleWebKit/602.1.50 (KHTML, like Gecko) AppleNews/608.0.1 Version/2.0.1";
        assert_eq!(check(news), None);
        // a plug-in's token is blanked and names no browser
        let frame = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0; chromeframe/11.0.660.0)";
        assert_eq!(check(frame), None);
        assert_eq!(in_app_browser(frame), None);
        // a console's own browser names its channel like a library (`Name/1.0;`)
        let wii = "Opera/9.00 (Nintendo Wii; U; ; 1038-58; Wii Internet Channel/1.0; en)";
        assert_eq!(check(wii), None);
        // the same companies' crawlers are still bots
        let spider =
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)";
        assert!(check(spider).is_some());
        let sogou_spider =
            "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)";
        assert!(check(sogou_spider).is_some());
        let google = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 (compatible; GoogleOther)";
        assert!(check(google).is_some());
    }

    #[test]
    fn capability_tokens_of_tvs_and_feature_phones_are_not_libraries() {
        // J2ME phones list their runtime as product tokens; isbot reads `java` as a bot
        let phone = "Nokia6300/2.0 (05.00) Profile/MIDP-2.0 Configuration/CLDC-1.1 Java/Jbed/7.0";
        assert_eq!(check(phone), None);
        let tv = "Opera/9.80 (Linux mips; U; HbbTV/1.1.1 (; Philips; ; ; ; ) CE-HTML/1.0 NETTV/3.2.1; en) Presto/2.6.33 Version/10.70";
        assert_eq!(check(tv), None);
        // a named crawler on a feature phone's user agent is still found
        let gbot = "Nokia6820/2.0 (4.83) Profile/MIDP-1.0 Configuration/CLDC-1.0 (compatible; Googlebot-Mobile/2.1; +http://www.google.com/bot.html)";
        assert_eq!(check(gbot).map(|r| r.list), Some("crawler-user-agents"));
    }

    #[test]
    fn device_models_are_not_bot_names() {
        let phone = "Mozilla/5.0 (Linux; Android 13; Spider 8 Build/TP1A.220624.014) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
        assert_eq!(check(phone), None);
        let spoof = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert!(check(spoof).is_some());
    }

    #[test]
    fn the_issue_s_misses_are_caught() {
        // issue 16: agents the old list (isbot crate 0.1.3) let through
        for ua in [
            "WhatsApp/2.23.20.0 A",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 (compatible; GoogleOther)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Google-Extended)",
            "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
            "facebookcatalog/1.0",
            "anthropic-ai",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)",
            "cohere-ai",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36 crawl4ai",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.28 Safari/537.36 Playwright/1.40.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Selenium",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 DatadogSynthetics",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 NewRelicSynthetics/1.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 RuxitSynthetic/1.0 v1234",
            "Mozilla/5.0 (X11; Linux x86_64; GTmetrix https://gtmetrix.com/) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 ThousandEyes-Dragonfly-x1",
            "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:Port Check)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 acunetix-wvs-test",
            "HTTPie/3.2.2",
            "colly - https://github.com/gocolly/colly",
        ] {
            assert!(check(ua).is_some(), "{ua}");
        }
    }

    #[test]
    fn the_lists_are_compiled_in_with_their_provenance() {
        let l = lists();
        assert_eq!(l[0].name, "crawler-user-agents");
        assert_eq!(l[0].licence, "MIT");
        assert!(l[0].patterns > 1000, "{:?}", l[0]);
        assert_eq!(l[2].name, "isbot");
        assert_eq!(l[2].licence, "Unlicense");
        assert!(l[2].patterns > 100);
        // every pattern compiles in the engine it was given to
        for p in BOT_PATTERNS {
            match &p.kind {
                PatternKind::Regex(r) => assert!(build_regex(r).is_some(), "{r}"),
                PatternKind::Look { core, .. } => assert!(build_regex(core).is_some(), "{core}"),
                PatternKind::Literal { .. } => {}
            }
        }
    }
}
