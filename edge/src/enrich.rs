//! Enrichment at the edge: geo from Cloudflare's `request.cf`, device / browser / OS
//! from the user agent, and the bot flag. Plain functions of their inputs; the raw IP
//! address is never read.
//!
//! - User agents are parsed with [`woothee`] (Apache-2.0), the Rust port of Woothee's
//!   maintained data set: a few dozen literal tests and small regexes, so an isolate
//!   pays almost nothing to start it (uap-core's thousand regexes would not fit the
//!   free plan's 10 ms CPU per request when compiled on a cold isolate).
//! - Bots are recognised by the [`isbot`] crate (MIT), which ships the pattern list of
//!   the `isbot` npm project (omrilotan/isbot, Unlicense), compiled once per isolate into
//!   one regex; plus Woothee's crawler category; plus Cloudflare's signals when present
//!   (`cf.botManagement.verifiedBot`, `cf.verifiedBotCategory`, a bot score below 30).

use serde_json::Value;
use std::sync::OnceLock;

/// Where the request came from, as Cloudflare saw it (`request.cf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Region (state, province) name.
    pub region: Option<String>,
    /// ISO 3166-2 region code.
    pub region_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Continent code (`EU`, `NA`, ...).
    pub continent: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<i64>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
    /// Cloudflare data centre (IATA code).
    pub colo: Option<String>,
    /// Whether the country is in the EU.
    pub is_eu: bool,
}

/// What the user agent says, and whether the request is a bot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device_type: String,
    /// Browser name (`Chrome`, `Safari`, `Firefox`, `Googlebot`, ...), when known.
    pub browser: Option<String>,
    /// Browser version.
    pub browser_version: Option<String>,
    /// Operating system (`Windows 10`, `iPhone`, `Mac OSX`, `Linux`, ...).
    pub os: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Flagged as a bot: stored, but left out of reports unless asked for.
    pub is_bot: bool,
}

/// A text field of `cf` (strings, or numbers written as text); empty means absent.
fn text(cf: &Value, key: &str) -> Option<String> {
    match cf.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number field of `cf` (numbers, or numbers written as text as `latitude` is).
fn number(cf: &Value, key: &str) -> Option<f64> {
    match cf.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// Reads the geo fields of `request.cf` (given as JSON; `Null` when there is none).
pub fn geo_from_cf(cf: &Value) -> Geo {
    Geo {
        country: text(cf, "country"),
        region: text(cf, "region"),
        region_code: text(cf, "regionCode"),
        city: text(cf, "city"),
        continent: text(cf, "continent"),
        postal_code: text(cf, "postalCode"),
        timezone: text(cf, "timezone"),
        latitude: number(cf, "latitude"),
        longitude: number(cf, "longitude"),
        asn: number(cf, "asn").map(|f| f as i64),
        as_org: text(cf, "asOrganization"),
        colo: text(cf, "colo"),
        is_eu: matches!(cf.get("isEUCountry"), Some(Value::String(s)) if s == "1")
            || matches!(cf.get("isEUCountry"), Some(Value::Bool(true))),
    }
}

/// Whether Cloudflare's signals in `request.cf` say this is a bot: a verified bot, a
/// verified bot category, or a bot-management score below 30 (1 = surely automated).
pub fn cf_says_bot(cf: &Value) -> bool {
    let bm = cf.get("botManagement");
    let verified = bm
        .and_then(|b| b.get("verifiedBot"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let category = text(cf, "verifiedBotCategory").is_some();
    let low_score = bm
        .and_then(|b| b.get("score"))
        .and_then(Value::as_f64)
        .is_some_and(|s| (1.0..30.0).contains(&s));
    verified || category || low_score
}

fn bots() -> &'static isbot::Bots {
    static BOTS: OnceLock<isbot::Bots> = OnceLock::new();
    BOTS.get_or_init(isbot::Bots::default)
}

fn woothee_parser() -> &'static woothee::parser::Parser {
    static PARSER: OnceLock<woothee::parser::Parser> = OnceLock::new();
    PARSER.get_or_init(woothee::parser::Parser::new)
}

/// Compiles the bot list and Woothee's regexes now (see `start` in `lib.rs`): measured
/// in V8 (wasm), Woothee's first parse takes ~26 ms and building the bot list ~18 ms;
/// afterwards a user agent costs ~50 µs (parse and bot check).
pub fn warm() {
    let _ = agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36");
    let _ = agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1");
}

/// Woothee's `UNKNOWN` and empty values become `None`.
fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_string())
}

/// Most user agents an isolate remembers parsed (the map is emptied when full).
const AGENT_MEMO_MAX: usize = 512;

thread_local! {
    /// User agents this isolate parsed: a handful of browser builds send most traffic,
    /// so most requests skip the parse and the bot patterns (~50 µs).
    static AGENTS: std::cell::RefCell<std::collections::HashMap<String, Agent>> =
        Default::default();
}

/// [`agent`], remembered per isolate for the user agents it has seen.
pub fn agent_memo(user_agent: &str) -> Agent {
    if let Some(a) = AGENTS.with(|m| m.borrow().get(user_agent).cloned()) {
        return a;
    }
    let a = agent(user_agent);
    // a user agent is short in practice; an outsize one is parsed every time
    if user_agent.len() <= 512 {
        AGENTS.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() >= AGENT_MEMO_MAX {
                m.clear();
            }
            m.insert(user_agent.to_string(), a.clone());
        });
    }
    a
}

/// Parses a user agent (empty when the request had none): device, browser, OS, bot.
pub fn agent(user_agent: &str) -> Agent {
    let ua = user_agent.trim();
    let listed_bot = ua.is_empty() || bots().is_bot(ua);
    let parsed = woothee_parser().parse(ua);
    let (category, browser, browser_version, os, os_version) = match &parsed {
        Some(r) => (
            r.category,
            known(r.name),
            known(r.version),
            known(r.os),
            known(&r.os_version),
        ),
        None => (woothee::woothee::VALUE_UNKNOWN, None, None, None, None),
    };
    let is_bot = listed_bot || category == "crawler";
    let tablet = ua.contains("iPad") || (ua.contains("Android") && !ua.contains("Mobile"));
    let device_type = if is_bot {
        "bot"
    } else {
        match category {
            "pc" => "desktop",
            "smartphone" if tablet => "tablet",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        }
    };
    Agent {
        device_type: device_type.to_string(),
        browser,
        browser_version,
        os,
        os_version,
        is_bot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36";

    #[test]
    fn the_memo_answers_as_the_parser_does() {
        for ua in [CHROME, SAFARI_IOS, CHROME, "", SAFARI_IOS] {
            assert_eq!(agent_memo(ua), agent(ua), "{ua}");
        }
    }

    #[test]
    fn chrome_on_windows_is_a_desktop_browser() {
        let a = agent(CHROME);
        assert_eq!(a.device_type, "desktop");
        assert_eq!(a.browser.as_deref(), Some("Chrome"));
        assert_eq!(a.os.as_deref(), Some("Windows 10"));
        assert!(!a.is_bot);
    }

    #[test]
    fn safari_on_iphone_is_mobile() {
        let a = agent(SAFARI_IOS);
        assert_eq!(a.device_type, "mobile");
        assert_eq!(a.browser.as_deref(), Some("Safari"));
        assert_eq!(a.os.as_deref(), Some("iPhone"));
        assert!(!a.is_bot);
    }

    #[test]
    fn firefox_on_linux() {
        let a = agent(FIREFOX);
        assert_eq!(a.device_type, "desktop");
        assert_eq!(a.browser.as_deref(), Some("Firefox"));
        assert_eq!(a.os.as_deref(), Some("Linux"));
        assert!(!a.is_bot);
    }

    #[test]
    fn crawlers_and_headless_browsers_are_bots() {
        assert!(agent(GOOGLEBOT).is_bot);
        assert_eq!(agent(GOOGLEBOT).device_type, "bot");
        assert!(agent(HEADLESS).is_bot);
        assert!(agent("").is_bot);
        assert!(agent("curl/8.5.0").is_bot);
    }

    #[test]
    fn geo_reads_cloudflare_fields() {
        let cf: Value = serde_json::json!({
            "country": "DE", "region": "Berlin", "regionCode": "BE", "city": "Berlin",
            "continent": "EU", "postalCode": "10115", "timezone": "Europe/Berlin",
            "latitude": "52.52000", "longitude": "13.40500", "asn": 3320,
            "asOrganization": "Deutsche Telekom AG", "colo": "TXL", "isEUCountry": "1"
        });
        let g = geo_from_cf(&cf);
        assert_eq!(g.country.as_deref(), Some("DE"));
        assert_eq!(g.region_code.as_deref(), Some("BE"));
        assert_eq!(g.latitude, Some(52.52));
        assert_eq!(g.longitude, Some(13.405));
        assert_eq!(g.asn, Some(3320));
        assert!(g.is_eu);
        assert_eq!(geo_from_cf(&Value::Null), Geo::default());
    }

    #[test]
    fn cloudflare_bot_signals() {
        assert!(cf_says_bot(
            &serde_json::json!({"botManagement": {"verifiedBot": true, "score": 99}})
        ));
        assert!(cf_says_bot(
            &serde_json::json!({"botManagement": {"score": 2}})
        ));
        assert!(cf_says_bot(
            &serde_json::json!({"verifiedBotCategory": "Search Engine Crawler"})
        ));
        assert!(!cf_says_bot(
            &serde_json::json!({"botManagement": {"verifiedBot": false, "score": 99}})
        ));
        assert!(!cf_says_bot(&Value::Null));
    }
}
