// The enrichment `main` had before issue 16 (`edge/src/enrich.rs`: the `woothee` crate
// and the `isbot` crate 0.1.3), kept only to measure against: included by `main.rs` and
// by `xtask/src/bench_enrich.rs`.

use std::sync::OnceLock;

fn bots() -> &'static isbot::Bots {
    static B: OnceLock<isbot::Bots> = OnceLock::new();
    B.get_or_init(isbot::Bots::default)
}

fn parser() -> &'static woothee::parser::Parser {
    static P: OnceLock<woothee::parser::Parser> = OnceLock::new();
    P.get_or_init(woothee::parser::Parser::new)
}

/// `main`'s `enrich::Agent`: what its memo kept and cloned per request.
#[allow(dead_code)]
#[derive(Debug, Clone, Default)]
pub struct OldAgent {
    pub device_type: String,
    pub browser: Option<String>,
    pub browser_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub is_bot: bool,
}

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != "UNKNOWN").then(|| s.to_string())
}

/// `main`'s `enrich::agent`, line for line.
pub fn agent_full(user_agent: &str) -> OldAgent {
    let ua = user_agent.trim();
    let listed_bot = ua.is_empty() || bots().is_bot(ua);
    let parsed = parser().parse(ua);
    let (category, browser, browser_version, os, os_version) = match &parsed {
        Some(r) => (
            r.category,
            known(r.name),
            known(r.version),
            known(r.os),
            known(&r.os_version),
        ),
        None => ("UNKNOWN", None, None, None, None),
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
    OldAgent {
        device_type: device_type.to_string(),
        browser,
        browser_version,
        os,
        os_version,
        is_bot,
    }
}

/// (device type, is bot), as `main` stored them.
#[allow(dead_code)]
pub fn agent(user_agent: &str) -> (String, bool) {
    let a = agent_full(user_agent);
    (a.device_type, a.is_bot)
}

/// Compiles the lists (what `#[event(start)]` paid).
#[allow(dead_code)]
pub fn warm() {
    let _ = bots();
    let _ = parser();
    let _ = agent_full("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36");
}
