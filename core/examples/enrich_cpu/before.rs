// The enrichment `main` had before issue 16 (`edge/src/enrich.rs`: the `woothee`
// crate and the `isbot` crate 0.1.3), kept only to measure against: included by
// `main.rs` and by `xtask/src/bench_enrich.rs`.

use std::sync::OnceLock;

fn bots() -> &'static isbot::Bots {
    static B: OnceLock<isbot::Bots> = OnceLock::new();
    B.get_or_init(isbot::Bots::default)
}

fn parser() -> &'static woothee::parser::Parser {
    static P: OnceLock<woothee::parser::Parser> = OnceLock::new();
    P.get_or_init(woothee::parser::Parser::new)
}

/// (device type, is bot), as `main` stored them.
pub fn agent(user_agent: &str) -> (&'static str, bool) {
    let ua = user_agent.trim();
    let listed_bot = ua.is_empty() || bots().is_bot(ua);
    let parsed = parser().parse(ua);
    let category = parsed.as_ref().map_or("UNKNOWN", |r| r.category);
    let is_bot = listed_bot || category == "crawler";
    let tablet = ua.contains("iPad") || (ua.contains("Android") && !ua.contains("Mobile"));
    let device = if is_bot {
        "bot"
    } else {
        match category {
            "pc" => "desktop",
            "smartphone" if tablet => "tablet",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        }
    };
    (device, is_bot)
}

/// Compiles the lists (what `#[event(start)]` paid).
#[allow(dead_code)]
pub fn warm() {
    let _ = bots();
    let _ = parser();
    let _ = agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36");
}
