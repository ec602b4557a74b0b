//! Who sent a request: device class, browser, OS and the bot flag, from the user agent
//! and, when the browser sends them, its Client Hints. [`parse`] is a plain function of
//! its inputs (the edge remembers its answers per isolate; a fuzz target can call it).
//!
//! Sources, and why (measured in BENCHMARKS.md, "Enrichment"):
//! - **Woothee** (Apache-2.0, the `woothee` crate: the Rust port of the maintained
//!   cross-language data set) names the browser and OS and gives a first device
//!   category. It starts in microseconds and parses a user agent in ~2 µs natively.
//!   uap-core's ~1,000 regexes (the `ua-parser` crate) cost ~130 ms to load natively,
//!   several times that in a worker's V8 at isolate start, and ~8 µs per user agent, and
//!   give no device class at all (only family / brand / model); Matomo's DeviceDetector
//!   data is LGPL-3.0 and ten times larger. Neither fits a Free-plan worker's CPU; see
//!   `core/data/README.md` for the comparison.
//! - **Corrections** Woothee cannot make (`core/data/devices.txt`, applied first): TVs,
//!   set-top boxes and consoles (Woothee reads HbbTV or Opera TV as a PC), tablets by
//!   model, feature phones and WAP browsers, and apps' own HTTP clients (`Dalvik/`,
//!   `okhttp`, `CFNetwork`), which Woothee leaves unknown.
//! - Android's convention that a **browser** on a tablet leaves `Mobile` out of its user
//!   agent is applied to browser user agents only (ones with a browser token): an app's
//!   HTTP client never says `Mobile`, and reading those as tablets was the old rule's
//!   error.
//! - **Client Hints** take precedence when sent (Chromium browsers send the low-entropy
//!   ones on every secure request): `Sec-CH-UA-Form-Factors` (when the site asked for
//!   it), then `Sec-CH-UA-Mobile` with `Sec-CH-UA-Platform` decide between mobile, tablet
//!   and desktop; `Sec-CH-UA-Platform(-Version)` names the OS (Windows 11 is only told
//!   apart this way); `Sec-CH-UA`'s brand list names the browser when the user agent
//!   does not, and `HeadlessChrome` there is a bot. A TV, console or bot seen in the user
//!   agent is kept (the hints only know mobile / not mobile).
//! - **Bots**: [`crate::bots`] (crawler-user-agents, isbot, this project's additions,
//!   with the in-app browser allow-list); the reason is kept with the answer.
//!
//! Device classes: `desktop`, `mobile` (phones, feature phones, handheld media players),
//! `tablet`, `tv` (smart TVs, set-top boxes, streaming sticks), `console`, `bot`, and
//! `other` (anything else: watches, cars, unknown clients).

use crate::bots;
use std::sync::OnceLock;

pub mod memo;

/// Every device class [`Agent::device_type`] takes.
pub const DEVICE_TYPES: [&str; 7] = [
    "desktop", "mobile", "tablet", "tv", "console", "bot", "other",
];

/// The Client Hints headers of a request, as sent (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientHints<'a> {
    /// `Sec-CH-UA`: the brand list (`"Chromium";v="131", "Google Chrome";v="131", ...`).
    pub brands: Option<&'a str>,
    /// `Sec-CH-UA-Mobile`: `?1` or `?0`.
    pub mobile: Option<&'a str>,
    /// `Sec-CH-UA-Platform`: `"Windows"`, `"Android"`, `"macOS"`, ...
    pub platform: Option<&'a str>,
    /// `Sec-CH-UA-Platform-Version`: `"15.0.0"`.
    pub platform_version: Option<&'a str>,
    /// `Sec-CH-UA-Model`: `"Pixel 8"`.
    pub model: Option<&'a str>,
    /// `Sec-CH-UA-Form-Factors`: `"Desktop"`, `"Mobile"`, `"Tablet"`, `"XR"`, ...
    pub form_factors: Option<&'a str>,
}

impl ClientHints<'_> {
    /// Whether no hint was sent.
    pub fn is_empty(&self) -> bool {
        *self == ClientHints::default()
    }
}

/// What a request's user agent (and hints) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// One of [`DEVICE_TYPES`].
    pub device_type: String,
    /// Browser (`Chrome`, `Safari`, `Firefox`, an in-app browser's app: `Instagram`...).
    pub browser: Option<String>,
    /// Browser version.
    pub browser_version: Option<String>,
    /// Operating system (Woothee's names: `Windows 10`, `Mac OSX`, `iPhone`, `Android`...).
    pub os: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Flagged as a bot: stored, but left out of reports unless asked for.
    pub is_bot: bool,
    /// Why it was flagged (`crawler-user-agents:Googlebot\/`, `isbot:headless`,
    /// `client-hints:HeadlessChrome`...); `None` for people.
    pub bot_reason: Option<String>,
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

struct Rules {
    woothee: woothee::parser::Parser,
}

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| Rules {
        woothee: woothee::parser::Parser::new(),
    })
}

/// Compiles everything [`parse`] needs now (the first parse would otherwise pay ~ms).
pub fn warm() {
    bots::warm();
    let _ = rules();
    let _ = parse(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        &ClientHints::default(),
    );
}

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_string())
}

/// A header value without its quotes (`"Windows"` → `Windows`).
fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"').trim()
}

/// The device class the rules of `core/data/devices.txt` give, if any.
fn rule_class(scan: &bots::Scan) -> Option<&'static str> {
    scan.device_rule()
        .map(|c| if c == "feature" { "mobile" } else { c })
}

/// A browser user agent (as opposed to an app's HTTP client) on Android.
fn android_browser_without_mobile(ua: &str) -> bool {
    ua.contains("Android")
        && !ua.contains("Mobile")
        && ["Chrome/", "Firefox/", "Safari/", "Opera", "SamsungBrowser/"]
            .iter()
            .any(|t| ua.contains(t))
}

/// The OS a user agent names when Woothee does not know it: (name, version).
fn os_fallback(ua: &str) -> Option<(&'static str, Option<String>)> {
    static RE: OnceLock<Vec<(&'static str, regex::Regex)>> = OnceLock::new();
    let res = RE.get_or_init(|| {
        [
            ("Android", r"(?i)\bAndroid[ /]?([0-9][0-9.]*)?"),
            ("iPhone", r"(?i)\biPhone(?:;.*? OS ([0-9_]+))?"),
            ("iPad", r"(?i)\biPad(?:;.*? OS ([0-9_]+))?"),
            (
                "iOS",
                r"(?i)\bCFNetwork/[0-9.]+ Darwin/[0-9.]+$|\biOS[ /]([0-9][0-9._]*)",
            ),
            ("KaiOS", r"(?i)\bKaiOS/?([0-9.]+)?"),
            ("Tizen", r"(?i)\bTizen[ /]?([0-9.]+)?"),
            ("webOS", r"(?i)\b(?:Web0S|webOS)[ /]?([0-9.]+)?"),
            ("Roku", r"(?i)\bRoku(?:OS)?/?([0-9.]+)?"),
            (
                "PlayStation",
                r"(?i)\bPlayStation[ /]?(?:[0-9] )?([0-9.]+)?",
            ),
            ("Xbox", r"(?i)\bXbox"),
            ("Nintendo", r"(?i)\bNintendo"),
            ("Symbian", r"(?i)\bSymbian(?:OS)?/?([0-9.]+)?"),
            ("BlackBerry", r"(?i)\bBlackBerry|\bBB10"),
            (
                "Windows Phone OS",
                r"(?i)\bWindows Phone(?: OS)? ?([0-9.]+)?",
            ),
            ("Mac OSX", r"(?i)\bMac OS X ?([0-9_.]+)?|\bDarwin/"),
            ("Windows", r"(?i)\bWindows\b"),
            ("Linux", r"(?i)\bLinux\b"),
        ]
        .into_iter()
        .filter_map(|(n, r)| regex::Regex::new(r).ok().map(|r| (n, r)))
        .collect()
    });
    res.iter().find_map(|(name, re)| {
        re.captures(ua).map(|c| {
            let v = c
                .get(1)
                .map(|m| m.as_str().replace('_', "."))
                .filter(|v| !v.is_empty());
            (*name, v)
        })
    })
}

/// The browser the brand list of `Sec-CH-UA` names: (name, major version). GREASE
/// brands ("Not_A Brand") are skipped, and "Chromium" when a browser brand is there.
fn brand(brands: &str) -> Option<(String, Option<String>)> {
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    for part in brands.split(',') {
        let mut it = part.split(';');
        let name = unquote(it.next().unwrap_or(""));
        if name.is_empty() || (name.contains("Not") && name.contains("Brand")) {
            continue;
        }
        let version = it
            .find_map(|kv| kv.trim().strip_prefix("v="))
            .map(|v| unquote(v).to_string());
        found.push((name.to_string(), version));
    }
    let pick = found
        .iter()
        .find(|(n, _)| n != "Chromium")
        .or(found.first())?
        .clone();
    let name = match pick.0.as_str() {
        "Google Chrome" => "Chrome".to_string(),
        "Microsoft Edge" => "Edge".to_string(),
        other => other.to_string(),
    };
    Some((name, pick.1))
}

/// The device class the hints give (`None`: they do not say).
fn hinted_class(h: &ClientHints<'_>) -> Option<&'static str> {
    if let Some(ff) = h.form_factors {
        for f in ff.split(',').map(unquote) {
            match f.to_ascii_lowercase().as_str() {
                "mobile" => return Some("mobile"),
                "tablet" | "eink" => return Some("tablet"),
                "desktop" => return Some("desktop"),
                "xr" | "watch" | "automotive" => return Some("other"),
                _ => {}
            }
        }
    }
    match h.mobile.map(str::trim) {
        Some("?1") => Some("mobile"),
        Some("?0") => match h.platform.map(unquote) {
            Some("Android") => Some("tablet"),
            Some("Windows" | "macOS" | "Linux" | "Chrome OS" | "ChromeOS" | "Fuchsia") => {
                Some("desktop")
            }
            _ => None,
        },
        _ => None,
    }
}

/// The OS the hints name: (name, version) in Woothee's naming where it has one.
fn hinted_os(h: &ClientHints<'_>) -> Option<(String, Option<String>)> {
    let platform = unquote(h.platform?);
    let version = h
        .platform_version
        .map(unquote)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let major = version
        .as_deref()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    Some(match platform {
        // Windows' platform version 13+ is Windows 11, 1-10 Windows 10 (Microsoft's docs)
        "Windows" => match major {
            Some(m) if m >= 13 => ("Windows 11".to_string(), version),
            Some(m) if m >= 1 => ("Windows 10".to_string(), version),
            _ => return None,
        },
        "macOS" => ("Mac OSX".to_string(), version),
        "Android" => ("Android".to_string(), version),
        "Chrome OS" | "ChromeOS" => ("ChromeOS".to_string(), version),
        "Linux" => ("Linux".to_string(), version),
        "iOS" => ("iPhone".to_string(), version),
        _ => return None,
    })
}

/// Parses a user agent (empty when the request had none) and its Client Hints.
pub fn parse(user_agent: &str, hints: &ClientHints<'_>) -> Agent {
    let ua = user_agent.trim();
    // every regular expression of the bot lists, in-app browsers and device rules, in
    // one pass over the user agent
    let scan = bots::Scan::new(ua);
    let parsed = rules().woothee.parse(ua);
    let (category, mut browser, mut browser_version, mut os, mut os_version) = match &parsed {
        Some(r) => (
            r.category,
            known(r.name),
            known(r.version),
            known(r.os),
            known(&r.os_version),
        ),
        None => (woothee::woothee::VALUE_UNKNOWN, None, None, None, None),
    };
    if os.is_none() {
        if let Some((name, v)) = os_fallback(ua) {
            os = Some(name.to_string());
            os_version = v;
        }
    }
    if let Some((name, version)) = bots::in_app_scanned(ua, &scan) {
        browser = Some(name.to_string());
        browser_version = version;
    }
    if let Some((name, v)) = hinted_os(hints) {
        // the hints know Windows 11 and the real Android / macOS versions that reduced
        // user agents freeze; they never contradict the OS family the UA names
        os = Some(name);
        os_version = v;
    }
    if browser.is_none() {
        if let Some((name, v)) = hints.brands.and_then(brand) {
            browser = Some(name);
            browser_version = v;
        }
    }

    let from_ua = match rule_class(&scan) {
        Some(c @ ("tv" | "console" | "tablet" | "desktop")) => Some(c),
        Some(_) if android_browser_without_mobile(ua) => Some("tablet"),
        Some(c) => Some(c),
        None if android_browser_without_mobile(ua) => Some("tablet"),
        None => None,
    };
    let device = match from_ua {
        Some(c @ ("tv" | "console")) => c,
        other => hinted_class(hints).or(other).unwrap_or(match category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" => "mobile",
            "appliance" => "tv",
            _ if ["Windows NT", "Macintosh", "X11;", "CrOS"]
                .iter()
                .any(|t| ua.contains(t)) =>
            {
                "desktop"
            }
            _ => "other",
        }),
    };
    let mut agent = Agent {
        device_type: device.to_string(),
        browser,
        browser_version,
        os,
        os_version,
        is_bot: false,
        bot_reason: None,
    };
    if let Some(reason) = bots::check_scanned(ua, &scan) {
        agent.flag_bot(reason.code());
    } else if hints
        .brands
        .is_some_and(|b| b.to_ascii_lowercase().contains("headless"))
    {
        agent.flag_bot("client-hints:HeadlessChrome");
    } else if category == "crawler" {
        agent.flag_bot(format!(
            "woothee:{}",
            parsed.as_ref().map_or("crawler", |r| r.name)
        ));
    }
    agent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(s: &str) -> Agent {
        parse(s, &ClientHints::default())
    }

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    #[test]
    fn browsers() {
        let a = ua(CHROME);
        assert_eq!(
            (
                a.device_type.as_str(),
                a.browser.as_deref(),
                a.os.as_deref(),
                a.is_bot
            ),
            ("desktop", Some("Chrome"), Some("Windows 10"), false)
        );
        let a = ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1");
        assert_eq!(
            (a.device_type.as_str(), a.os.as_deref()),
            ("mobile", Some("iPhone"))
        );
        let a = ua("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/119.0.6045.109 Mobile/15E148 Safari/604.1");
        assert_eq!(a.device_type, "tablet");
    }

    #[test]
    fn android_tablets_by_the_browser_convention_and_by_model() {
        assert_eq!(
            ua("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36").device_type,
            "tablet"
        );
        assert_eq!(
            ua("Mozilla/5.0 (Linux; Android 12; Lenovo YT-J706F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36").device_type,
            "tablet"
        );
        assert_eq!(
            ua("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36").device_type,
            "mobile"
        );
    }

    #[test]
    fn tablets_by_the_words_in_their_model_name() {
        // small vendors' tablets say "Mobile"; their model names say Tab or MID
        for s in [
            "Mozilla/5.0 (Linux; Android 7.0; Acme_Tab7LTE) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/76.0.3809.111 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 4.4.4; ACME TAB 10 Build/KTU84P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/57.0.2987.132 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; U; Android 4.0.4; en-us; MID-703G Build/IMM76D) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
        ] {
            assert_eq!(ua(s).device_type, "tablet", "{s}");
        }
        // words that only begin like them are phones
        for s in [
            "Mozilla/5.0 (Linux; Android 10; Acme Midi 2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.82 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 11; Acme Taban) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.82 Mobile Safari/537.36",
        ] {
            assert_eq!(ua(s).device_type, "mobile", "{s}");
        }
    }

    #[test]
    fn apps_on_phones_are_phones() {
        // issue 16: app HTTP clients never say "Mobile"; they were read as tablets
        for s in [
            "Dalvik/2.1.0 (Linux; U; Android 11; SM-G991B Build/RP1A.200720.012)",
            "MyApp/3.1 CFNetwork/1410.0.3 Darwin/22.6.0",
            "Instagram 307.0.1.22.109 Android (34/14; 420dpi; 1080x2400; Google/google; Pixel 8; shiba; shiba; en_US; 536988408)",
        ] {
            assert_eq!(ua(s).device_type, "mobile", "{s}");
        }
        assert_eq!(
            ua("Dalvik/2.1.0 (Linux; U; Android 11; SM-T870 Build/RP1A.200720.012)").device_type,
            "tablet"
        );
    }

    #[test]
    fn tvs_consoles_and_feature_phones() {
        for (s, want) in [
            ("Mozilla/5.0 (Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 85.0.4183.93/6.0 TV Safari/537.36 SMART-TV; Tizen 6.0", "tv"),
            ("Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 OPR/46.0.2207.0 OMI/4.21.0.273.DIA5.149 Model/Vestel-MB211 VSTVB MB211 HbbTV/1.5.1 (+DRM; Vestel; MB211; 3.20.0.0; ;) FVC/4.0 (Vestel; MB211; )", "tv"),
            ("Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.152 Mobile Safari/537.36", "tv"),
            ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15", "console"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.169 Safari/537.36 Edge/18.19041", "console"),
            ("Nokia6300/2.0 (05.00) Profile/MIDP-2.0 Configuration/CLDC-1.1", "mobile"),
            ("Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i;Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5", "mobile"),
            ("Opera/9.80 (J2ME/MIDP; Opera Mini/4.2.14912/870; U; id) Presto/2.4.15", "mobile"),
        ] {
            assert_eq!(ua(s).device_type, want, "{s}");
        }
    }

    #[test]
    fn client_hints_take_precedence() {
        // a reduced Chrome UA on an Android tablet still says "Mobile"-less "K"; the
        // hints say it is not mobile, on Android: a tablet
        let h = ClientHints {
            mobile: Some("?0"),
            platform: Some("\"Android\""),
            ..ClientHints::default()
        };
        let reduced_phone = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
        assert_eq!(parse(reduced_phone, &h).device_type, "tablet");
        let h = ClientHints {
            mobile: Some("?1"),
            platform: Some("\"Android\""),
            ..ClientHints::default()
        };
        assert_eq!(parse(reduced_phone, &h).device_type, "mobile");
        // Windows 11 is told only by the hints
        let h = ClientHints {
            mobile: Some("?0"),
            platform: Some("\"Windows\""),
            platform_version: Some("\"15.0.0\""),
            brands: Some(
                "\"Google Chrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
            ),
            ..ClientHints::default()
        };
        let a = parse(CHROME, &h);
        assert_eq!(
            (a.device_type.as_str(), a.os.as_deref()),
            ("desktop", Some("Windows 11"))
        );
        // a TV stays a TV whatever the mobile flag says
        let tv = "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/88.0.4324.152 Mobile Safari/537.36";
        assert_eq!(parse(tv, &h).device_type, "tv");
    }

    #[test]
    fn headless_brand_is_a_bot() {
        let h = ClientHints {
            brands: Some("\"HeadlessChrome\";v=\"131\", \"Chromium\";v=\"131\""),
            ..ClientHints::default()
        };
        let a = parse(CHROME, &h);
        assert!(a.is_bot);
        assert_eq!(a.device_type, "bot");
        assert_eq!(a.bot_reason.as_deref(), Some("client-hints:HeadlessChrome"));
    }

    #[test]
    fn bots_carry_their_reason() {
        let a = ua("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert!(a.is_bot);
        assert_eq!(a.device_type, "bot");
        assert_eq!(
            a.bot_reason.as_deref(),
            Some("crawler-user-agents:Googlebot\\/")
        );
        let a = ua("");
        assert_eq!(
            a.bot_reason.as_deref(),
            Some("closeloop:(empty user agent)")
        );
    }

    #[test]
    fn in_app_browsers_are_named() {
        let a = ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 307.0.1.22.109 (iPhone15,2; iOS 17_1; en_US; en; scale=3.00; 1179x2556; 532163185)");
        assert_eq!(
            (
                a.browser.as_deref(),
                a.browser_version.as_deref(),
                a.device_type.as_str(),
                a.is_bot
            ),
            (Some("Instagram"), Some("307.0.1.22.109"), "mobile", false)
        );
    }
}
