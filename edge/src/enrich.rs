//! Enrichment at the edge: geo from Cloudflare's `request.cf`, device / browser / OS
//! from the user agent and Client Hints, and the bot flag with its reason. Plain
//! functions of their inputs; the raw IP address is never read.
//!
//! - User agents and Client Hints are parsed by `closeloop_core::agent` (Woothee with
//!   device corrections, hints first) and checked against `closeloop_core::bots`
//!   (crawler-user-agents, isbot, this project's additions, the in-app browser
//!   allow-list); see those modules for the sources and why. Parsed agents are
//!   remembered per isolate (512), keyed by the user agent and the hints.
//! - Cloudflare's own signals, when the zone has them (`cf.botManagement.verifiedBot`,
//!   `cf.verifiedBotCategory`, a bot-management score below 30), flag the request too;
//!   their reason starts with `cloudflare:` and, being a fact of that request, is kept
//!   when stored events are re-classified.
//! - Each request's user agent and hints are kept once per site (`agents`, migration
//!   0013) under [`AgentSource::id`], so that `POST /v1/admin/sites/{site}/reclassify`
//!   can parse them again when the lists change.

use closeloop_core::agent::memo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::rc::Rc;

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

/// What the user agent says, whether the request is a bot and why, and where it came
/// from (what `agents` keeps for re-classification).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// One of `closeloop_core::agent::DEVICE_TYPES` (`desktop`, `mobile`, `tablet`,
    /// `tv`, `console`, `bot`, `other`).
    pub device_type: String,
    /// Browser name (`Chrome`, `Safari`, `Instagram`, `Googlebot`, ...), when known.
    pub browser: Option<String>,
    /// Browser version.
    pub browser_version: Option<String>,
    /// Operating system (`Windows 10`, `iPhone`, `Mac OSX`, `Linux`, ...).
    pub os: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Flagged as a bot: stored, but left out of reports unless asked for.
    pub is_bot: bool,
    /// Why (`crawler-user-agents:Googlebot\/`, `isbot:headless`, `cloudflare:verified-bot`,
    /// `import:context`...); `None` for people.
    pub bot_reason: Option<String>,
    /// The user agent and hints this was parsed from (`None`: given by an import's
    /// context, or the caller decided; such rows are never re-classified).
    pub source: Option<AgentSource>,
}

/// A request's user agent and Client Hints, as stored in `agents`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSource {
    /// `ua_` and the first 24 hex digits of SHA-256(user agent, hints): the row's key.
    pub id: String,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The Client Hints headers sent, as a JSON object of lower-case names (`{}`: none).
    pub hints: String,
}

impl Agent {
    /// Marks the agent as a bot for `reason` (the first reason stays).
    pub fn flag_bot(&mut self, reason: impl Into<String>) {
        if !self.is_bot {
            self.bot_reason = Some(reason.into());
        }
        self.is_bot = true;
        self.device_type = "bot".into();
    }
}

impl From<closeloop_core::agent::Agent> for Agent {
    fn from(a: closeloop_core::agent::Agent) -> Self {
        Agent {
            device_type: a.device_type,
            browser: a.browser,
            browser_version: a.browser_version,
            os: a.os,
            os_version: a.os_version,
            is_bot: a.is_bot,
            bot_reason: a.bot_reason,
            source: None,
        }
    }
}

/// The Client Hints headers read (lower-case), in the order they are stored.
pub const HINT_HEADERS: [&str; 6] = [
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-ch-ua-platform-version",
    "sec-ch-ua-model",
    "sec-ch-ua-form-factors",
];

/// Longest header value kept (a user agent or a hint); longer ones are cut.
pub const MAX_HEADER_CHARS: usize = 1024;

/// The hints of `values` (in [`HINT_HEADERS`] order) as core reads them.
fn hints_of(values: &[Option<String>; 6]) -> closeloop_core::agent::ClientHints<'_> {
    let g = |i: usize| values[i].as_deref();
    closeloop_core::agent::ClientHints {
        brands: g(0),
        mobile: g(1),
        platform: g(2),
        platform_version: g(3),
        model: g(4),
        form_factors: g(5),
    }
}

/// Cuts `s` to [`MAX_HEADER_CHARS`] characters.
fn cap(s: &str) -> String {
    s.chars().take(MAX_HEADER_CHARS).collect()
}

/// The stored form of a request's hints: a JSON object of the ones sent.
fn hints_json(values: &[Option<String>; 6]) -> String {
    let mut obj = serde_json::Map::new();
    for (name, v) in HINT_HEADERS.iter().zip(values) {
        if let Some(v) = v {
            obj.insert((*name).to_string(), Value::String(v.clone()));
        }
    }
    Value::Object(obj).to_string()
}

/// Reads stored hints back ([`AgentSource::hints`]); anything unreadable is no hints.
fn hints_from_json(json: &str) -> [Option<String>; 6] {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    std::array::from_fn(|i| {
        v.get(HINT_HEADERS[i])
            .and_then(Value::as_str)
            .map(|s| cap(s.trim()))
    })
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

/// Whether Cloudflare's signals in `request.cf` say this is a bot, and which: a
/// verified bot (`cloudflare:verified-bot`), a verified bot category
/// (`cloudflare:verified-bot-category:Search Engine Crawler`), or a bot-management score
/// below 30 (`cloudflare:bot-score:2`; 1 = surely automated).
pub fn cf_bot_reason(cf: &Value) -> Option<String> {
    let bm = cf.get("botManagement");
    if let Some(category) = text(cf, "verifiedBotCategory") {
        return Some(format!("cloudflare:verified-bot-category:{category}"));
    }
    if bm
        .and_then(|b| b.get("verifiedBot"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Some("cloudflare:verified-bot".into());
    }
    bm.and_then(|b| b.get("score"))
        .and_then(Value::as_f64)
        .filter(|s| (1.0..30.0).contains(s))
        .map(|s| format!("cloudflare:bot-score:{s}"))
}

/// Whether Cloudflare's signals say this is a bot ([`cf_bot_reason`]).
pub fn cf_says_bot(cf: &Value) -> bool {
    cf_bot_reason(cf).is_some()
}

/// Compiles the bot lists and the user-agent rules now (see `start` in `lib.rs`).
pub fn warm() {
    closeloop_core::agent::warm();
}

/// Most user agents an isolate remembers parsed (the map is emptied when full).
const AGENT_MEMO_MAX: usize = 512;

/// One remembered parse: what it was parsed from, and the answer (shared: a hit
/// clones a pointer, not the agent's strings).
struct Remembered {
    user_agent: String,
    hints: [Option<String>; 6],
    agent: Rc<Agent>,
}

thread_local! {
    /// Agents this isolate parsed, by a hash of the user agent and hints (checked
    /// against the entry: a collision is a miss, never another agent's answer): a
    /// handful of browser builds send most traffic, so most requests skip the parse and
    /// the bot lists, and a hit allocates nothing.
    static AGENTS: std::cell::RefCell<memo::Memo<Remembered>> = Default::default();
}

/// Parses a user agent and its hints (in [`HINT_HEADERS`] order): device, browser, OS,
/// bot and why, with the [`AgentSource`] to store. A plain function (no memo).
pub fn agent_with_hints(user_agent: &str, hints: &[Option<String>; 6]) -> Agent {
    let ua = cap(user_agent.trim());
    let hints: [Option<String>; 6] = std::array::from_fn(|i| {
        hints[i]
            .as_deref()
            .map(|h| cap(h.trim()))
            .filter(|h| !h.is_empty())
    });
    let mut a = Agent::from(closeloop_core::agent::parse(&ua, &hints_of(&hints)));
    let stored = hints_json(&hints);
    let digest = Sha256::digest(format!("{ua}\n{stored}").as_bytes());
    let id: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    a.source = Some(AgentSource {
        id: format!("ua_{id}"),
        user_agent: ua,
        hints: stored,
    });
    a
}

/// Parses a user agent alone (no hints): [`agent_with_hints`].
pub fn agent(user_agent: &str) -> Agent {
    agent_with_hints(user_agent, &Default::default())
}

/// Parses an agent again from what `agents` stored (re-classification).
pub fn agent_from_stored(user_agent: &str, hints_json: &str) -> Agent {
    agent_with_hints(user_agent, &hints_from_json(hints_json))
}

/// [`agent_with_hints`], remembered per isolate.
pub fn agent_memo(user_agent: &str, hints: &[Option<String>; 6]) -> Rc<Agent> {
    let key = memo::key(user_agent, hints);
    let hit = AGENTS.with(|m| {
        m.borrow()
            .get(&key)
            .filter(|r| r.user_agent == user_agent && r.hints == *hints)
            .map(|r| Rc::clone(&r.agent))
    });
    if let Some(a) = hit {
        return a;
    }
    let a = Rc::new(agent_with_hints(user_agent, hints));
    // a user agent is short in practice; an outsize one is parsed every time
    let size = user_agent.len() + hints.iter().flatten().map(String::len).sum::<usize>();
    if size <= 1024 {
        AGENTS.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() >= AGENT_MEMO_MAX {
                m.clear();
            }
            m.insert(
                key,
                Remembered {
                    user_agent: user_agent.to_string(),
                    hints: hints.clone(),
                    agent: Rc::clone(&a),
                },
            );
        });
    }
    a
}

/// The agent of a request: its `User-Agent` and Client Hints headers (memoised), and
/// Cloudflare's bot signals from `request.cf`.
pub fn agent_of_request(headers: &worker::Headers, cf: &Value) -> Rc<Agent> {
    let get = |name: &str| headers.get(name).ok().flatten();
    let ua = get("User-Agent").unwrap_or_default();
    let hints: [Option<String>; 6] = std::array::from_fn(|i| get(HINT_HEADERS[i]));
    let mut agent = agent_memo(&ua, &hints);
    if let Some(reason) = cf_bot_reason(cf) {
        // the remembered answer stays the user agent's own: this request's copy
        Rc::make_mut(&mut agent).flag_bot(reason);
    }
    agent
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
            assert_eq!(*agent_memo(ua, &Default::default()), agent(ua), "{ua}");
        }
        // a hit shares the remembered answer (no parse, no copy); other hints do not hit
        let first = agent_memo(FIREFOX, &Default::default());
        assert!(Rc::ptr_eq(
            &first,
            &agent_memo(FIREFOX, &Default::default())
        ));
        let mut hints: [Option<String>; 6] = Default::default();
        hints[1] = Some("?0".into());
        assert!(!Rc::ptr_eq(&first, &agent_memo(FIREFOX, &hints)));
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
    fn hints_are_part_of_the_key_and_the_parse() {
        let hints: [Option<String>; 6] = [
            None,
            Some("?0".into()),
            Some("\"Android\"".into()),
            None,
            None,
            None,
        ];
        let phone_ua = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
        let plain = agent(phone_ua);
        let hinted = agent_memo(phone_ua, &hints);
        assert_eq!(plain.device_type, "mobile");
        assert_eq!(hinted.device_type, "tablet");
        let (a, b) = (
            plain.source.expect("source"),
            hinted.source.clone().expect("source"),
        );
        assert_ne!(a.id, b.id);
        assert_eq!(
            b.hints,
            r#"{"sec-ch-ua-mobile":"?0","sec-ch-ua-platform":"\"Android\""}"#
        );
        // what `agents` stored parses to the same answer
        assert_eq!(
            agent_from_stored(&b.user_agent, &b.hints).device_type,
            "tablet"
        );
        assert_eq!(
            agent_from_stored(&b.user_agent, &b.hints)
                .source
                .map(|s| s.id),
            Some(b.id)
        );
    }

    #[test]
    fn bots_keep_their_reason() {
        let a = agent(GOOGLEBOT);
        assert_eq!(
            a.bot_reason.as_deref(),
            Some("crawler-user-agents:Googlebot\\/")
        );
        let mut b = agent(CHROME);
        assert_eq!(b.bot_reason, None);
        b.flag_bot("cloudflare:verified-bot");
        b.flag_bot("later");
        assert_eq!(b.bot_reason.as_deref(), Some("cloudflare:verified-bot"));
        assert_eq!(b.device_type, "bot");
    }

    #[test]
    fn cloudflare_bot_signals() {
        assert_eq!(
            cf_bot_reason(&serde_json::json!({"verifiedBotCategory": "Search Engine Crawler"}))
                .as_deref(),
            Some("cloudflare:verified-bot-category:Search Engine Crawler")
        );
        assert_eq!(
            cf_bot_reason(&serde_json::json!({"botManagement": {"score": 2}})).as_deref(),
            Some("cloudflare:bot-score:2")
        );
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
