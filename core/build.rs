//! Build script: compiles `core/data/` into Rust for the `full` feature.
//!
//! - `data/matomo/SearchEngines.yml`, `data/matomo/Socials.yml` (Matomo, CC0) and
//!   `data/source-categories.txt` (hand-kept gaps) become one perfect-hash map from a
//!   host key or a source name to its GA4 source category (`$OUT_DIR/sources.rs`).
//! - `data/ga4-channel-rules.json` (GA4's default channel group) becomes the rule
//!   evaluation function (`$OUT_DIR/ga4_rules.rs`).
//! - `data/excluded-referrers.txt` becomes a static pattern list
//!   (`$OUT_DIR/excluded_referrers.rs`).
//!
//! - `data/bots/` and `data/devices.txt` become the bot pattern and device rule tables
//!   (`$OUT_DIR/agents.rs`, see `build/agents.rs`).
//!
//! Without `full` (the tracker's wasm build) it does nothing and needs no dependency.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "full")]
    full::run();
}

/// `data/bots/` and `data/devices.txt` → `$OUT_DIR/agents.rs` (user agents: bots, devices).
#[cfg(feature = "full")]
#[path = "build/agents.rs"]
mod agents;

#[cfg(feature = "full")]
mod full {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    /// What a key stands for, in precedence order (a lower rank replaces a higher one).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Cat {
        Search,
        Social,
        Video,
        Shopping,
        Ai,
        NotASource,
    }

    impl Cat {
        fn rust(self) -> &'static str {
            match self {
                Cat::Search => "SourceCategory::Search",
                Cat::Social => "SourceCategory::Social",
                Cat::Video => "SourceCategory::Video",
                Cat::Shopping => "SourceCategory::Shopping",
                Cat::Ai => "SourceCategory::AiAssistant",
                Cat::NotASource => "SourceCategory::None",
            }
        }
    }

    /// One key of the generated map.
    #[derive(Clone, Debug)]
    struct Item {
        cat: Cat,
        /// Source name to report for search engines ("google"); empty for the others
        /// (their source is the referrer host, as GA4 reports it).
        name: String,
        /// Whether subdomains of the key match too.
        suffix: bool,
        /// 0 = hand-kept overrides, 1 = Matomo social, 2 = Matomo search.
        rank: u8,
    }

    fn data_dir() -> PathBuf {
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("data")
    }

    pub(crate) fn read(path: &Path) -> String {
        println!("cargo:rerun-if-changed={}", path.display());
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    pub fn run() {
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let data = data_dir();
        std::fs::write(out.join("sources.rs"), sources(&data)).expect("write sources.rs");
        std::fs::write(out.join("ga4_rules.rs"), rules(&data)).expect("write ga4_rules.rs");
        std::fs::write(out.join("excluded_referrers.rs"), excluded(&data))
            .expect("write excluded_referrers.rs");
        std::fs::write(out.join("android_apps.rs"), android_apps(&data))
            .expect("write android_apps.rs");
        crate::agents::run(&data, &out);
    }

    // ---------------------------------------------------------------- sources

    fn insert(map: &mut BTreeMap<String, Item>, key: String, item: Item) {
        match map.get_mut(&key) {
            Some(old) if old.rank < item.rank => {}
            Some(old) if old.rank == item.rank => {
                // Same list: "{}.bing.com" after "bing.com" widens the first entry.
                if old.cat == item.cat {
                    old.suffix |= item.suffix;
                }
            }
            _ => {
                map.insert(key, item);
            }
        }
    }

    /// Normalises a Matomo URL entry into (key, suffix); `None` for entries that cannot
    /// be matched on a host alone.
    fn host_key(raw: &str) -> Option<(String, bool)> {
        let mut s = raw.trim().trim_matches('\'').to_ascii_lowercase();
        if let Some(rest) = s.strip_prefix("android-app://") {
            s = rest.to_string();
        } else if s.starts_with("android-app") {
            return None;
        }
        // Entries with a path ("bing.com/images/search") are matched on their host.
        if let Some(i) = s.find('/') {
            s.truncate(i);
        }
        let s = s.strip_prefix("www.").map(str::to_string).unwrap_or(s);
        if s.is_empty() {
            return None;
        }
        if let Some(rest) = s.strip_prefix("{}.") {
            // "{}.bing.com": any subdomain; "{}.ask.com"-style entries also cover the
            // parent. Middle wildcards ("images.{}.ask.com") fall back to the parent too.
            return Some((rest.to_string(), true));
        }
        if let Some(i) = s.find(".{}.") {
            return Some((s[i + 4..].to_string(), true));
        }
        Some((s, false))
    }

    /// The source name GA4-style reports use for a search engine: Matomo's name, lower
    /// case, without "!"; "google images" → "google" when the first word is an engine too.
    fn engine_source(name: &str, engines: &[String]) -> String {
        let lower = name.to_lowercase().replace('!', "");
        let lower = lower.trim().to_string();
        if let Some((first, _)) = lower.split_once(' ') {
            if engines.iter().any(|e| e == first) {
                return first.to_string();
            }
        }
        lower
    }

    fn sources(data: &Path) -> String {
        let mut map: BTreeMap<String, Item> = BTreeMap::new();
        // `*word*` keys: a word in a host's name (a genre of site), checked after every
        // host key
        let mut words: Vec<(String, Cat)> = Vec::new();

        // Hand-kept overrides first (rank 0).
        for (n, line) in read(&data.join("source-categories.txt"))
            .lines()
            .enumerate()
        {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut cols = line.split_whitespace();
            let (Some(cat), Some(key)) = (cols.next(), cols.next()) else {
                panic!("source-categories.txt:{}: want CATEGORY KEY [NAME]", n + 1)
            };
            let given_name = cols.next();
            let cat = match cat {
                "SEARCH" => Cat::Search,
                "SOCIAL" => Cat::Social,
                "VIDEO" => Cat::Video,
                "SHOPPING" => Cat::Shopping,
                "AI" => Cat::Ai,
                "NONE" => Cat::NotASource,
                other => panic!("source-categories.txt:{}: unknown category {other}", n + 1),
            };
            let key = key.trim().to_ascii_lowercase();
            if let Some(word) = key.strip_prefix('*').and_then(|k| k.strip_suffix('*')) {
                assert!(
                    word.len() >= 4 && word.chars().all(|c| c.is_ascii_alphanumeric()),
                    "source-categories.txt:{}: a *word* key wants 4+ letters or digits",
                    n + 1
                );
                words.push((word.to_string(), cat));
                continue;
            }
            let key = key.strip_prefix("www.").unwrap_or(&key).to_string();
            // Hosts and `name.{}` keys cover subdomains; bare words are exact names.
            let is_host = key.contains('.');
            let name = match (cat, given_name) {
                (Cat::Search, Some(n)) => n.to_string(),
                (Cat::Search, None) if !key.contains('.') => key.clone(),
                (Cat::Search, None) => panic!(
                    "source-categories.txt:{}: a SEARCH host needs a NAME",
                    n + 1
                ),
                (_, Some(extra)) => panic!(
                    "source-categories.txt:{}: unexpected {extra:?} (only SEARCH takes a NAME)",
                    n + 1
                ),
                _ => String::new(),
            };
            insert(
                &mut map,
                key,
                Item {
                    cat,
                    name,
                    suffix: is_host,
                    rank: 0,
                },
            );
        }

        // Matomo socials (rank 1): name -> list of hosts; hosts match subdomains too.
        let socials =
            yaml_rust2::YamlLoader::load_from_str(&read(&data.join("matomo/Socials.yml")))
                .expect("Socials.yml parses");
        if let Some(h) = socials.first().and_then(|d| d.as_hash()) {
            for (name, urls) in h {
                let name = name.as_str().unwrap_or_default().to_lowercase();
                for url in urls.as_vec().into_iter().flatten() {
                    if let Some((key, _)) = url.as_str().and_then(host_key) {
                        insert(
                            &mut map,
                            key,
                            Item {
                                cat: Cat::Social,
                                name: String::new(),
                                suffix: true,
                                rank: 1,
                            },
                        );
                    }
                }
                if !name.is_empty() && !name.contains('.') && !name.contains('%') {
                    insert(
                        &mut map,
                        name,
                        Item {
                            cat: Cat::Social,
                            name: String::new(),
                            suffix: false,
                            rank: 1,
                        },
                    );
                }
            }
        }

        // Matomo search engines (rank 2).
        let engines =
            yaml_rust2::YamlLoader::load_from_str(&read(&data.join("matomo/SearchEngines.yml")))
                .expect("SearchEngines.yml parses");
        if let Some(h) = engines.first().and_then(|d| d.as_hash()) {
            let plain: Vec<String> = h
                .keys()
                .filter_map(|k| k.as_str())
                .map(|k| k.to_lowercase().replace('!', "").trim().to_string())
                .filter(|k| !k.contains(' '))
                .collect();
            for (name, configs) in h {
                let Some(name) = name.as_str() else { continue };
                let source = engine_source(name, &plain);
                for config in configs.as_vec().into_iter().flatten() {
                    for url in config["urls"].as_vec().into_iter().flatten() {
                        if let Some((key, suffix)) = url.as_str().and_then(host_key) {
                            insert(
                                &mut map,
                                key,
                                Item {
                                    cat: Cat::Search,
                                    name: source.clone(),
                                    suffix,
                                    rank: 2,
                                },
                            );
                        }
                    }
                }
                // The engine's own name as a utm_source value ("google", "bing").
                if !source.contains(' ') {
                    insert(
                        &mut map,
                        source.clone(),
                        Item {
                            cat: Cat::Search,
                            name: source,
                            suffix: false,
                            rank: 2,
                        },
                    );
                }
            }
        }

        let mut phf = phf_codegen::Map::new();
        let values: Vec<(String, String)> = map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    format!(
                        "SourceEntry {{ category: {}, name: {:?}, suffix: {} }}",
                        v.cat.rust(),
                        v.name,
                        v.suffix
                    ),
                )
            })
            .collect();
        for (k, v) in &values {
            phf.entry(k.as_str(), v.as_str());
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// @generated by core/build.rs from core/data/; do not edit."
        );
        let _ = writeln!(out, "/// Number of keys in [`SOURCES`].");
        let _ = writeln!(out, "pub(crate) const SOURCE_KEYS: usize = {};", map.len());
        let _ = writeln!(out, "/// Host keys and source names → category (Matomo lists + core/data/source-categories.txt).");
        let _ = writeln!(
            out,
            "pub(crate) static SOURCES: phf::Map<&'static str, SourceEntry> = {};",
            phf.build()
        );
        let _ = writeln!(out, "/// Words in a host's name that make it a source (`*word*` keys of core/data/source-categories.txt).");
        let _ = writeln!(
            out,
            "pub(crate) static HOST_WORDS: &[(&str, SourceEntry)] = &["
        );
        for (w, cat) in &words {
            let _ = writeln!(
                out,
                "    ({w:?}, SourceEntry {{ category: {}, name: \"\", suffix: true }}),",
                cat.rust()
            );
        }
        let _ = writeln!(out, "];");
        out
    }

    // ------------------------------------------------------------------ rules

    fn channel_variant(name: &str) -> String {
        let v: String = name
            .split([' ', '-'])
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect();
        match v.as_str() {
            "Direct"
            | "CrossNetwork"
            | "PaidShopping"
            | "PaidSearch"
            | "PaidSocial"
            | "PaidVideo"
            | "Display"
            | "PaidOther"
            | "OrganicShopping"
            | "OrganicSocial"
            | "OrganicVideo"
            | "OrganicSearch"
            | "Referral"
            | "Email"
            | "Affiliates"
            | "Audio"
            | "SMS"
            | "MobilePushNotifications"
            | "AIAssistant"
            | "Unassigned" => {}
            other => panic!("ga4-channel-rules.json: unknown channel {name:?} ({other})"),
        }
        match v.as_str() {
            "SMS" => "Sms".to_string(),
            "AIAssistant" => "AiAssistant".to_string(),
            _ => v,
        }
    }

    /// The hand-written matcher for each regex the article uses. A changed regex in
    /// the data file fails the build here instead of being matched wrongly.
    fn regex_fn(re: &str) -> &'static str {
        match re {
            "^(.*cp.*|ppc|retargeting|paid.*)$" => "crate::channel::matchers::paid_medium",
            "^(.*(([^a-df-z]|^)shop|shopping).*)$" => "crate::channel::matchers::shopping_campaign",
            "^(.*video.*)$" => "crate::channel::matchers::video_medium",
            other => panic!(
                "ga4-channel-rules.json uses the regex {other:?}, which has no matcher in \
                 src/channel.rs (mod matchers): add one and its cross-check test"
            ),
        }
    }

    fn cond(v: &serde_json::Value, regexes: &serde_json::Map<String, serde_json::Value>) -> String {
        let obj = v.as_object().expect("a condition is an object");
        if let Some(all) = obj.get("all") {
            let parts: Vec<String> = all
                .as_array()
                .expect("all: [..]")
                .iter()
                .map(|c| cond(c, regexes))
                .collect();
            return format!("({})", parts.join(" && "));
        }
        if let Some(any) = obj.get("any") {
            let parts: Vec<String> = any
                .as_array()
                .expect("any: [..]")
                .iter()
                .map(|c| cond(c, regexes))
                .collect();
            return format!("({})", parts.join(" || "));
        }
        let (field, test) = obj.iter().next().expect("a field condition");
        let f = match field.as_str() {
            "source" | "medium" | "campaign" => format!("f.{field}"),
            other => panic!("unknown field {other}"),
        };
        let (op, arg) = test
            .as_object()
            .and_then(|t| t.iter().next())
            .expect("an operator");
        let s = |a: &serde_json::Value| a.as_str().expect("a string").to_lowercase();
        match op.as_str() {
            "exactly" => format!("{f} == {:?}", s(arg)),
            "contains" => format!("crate::channel::matchers::contains({f}, {:?})", s(arg)),
            "ends_with" => format!("{f}.ends_with({:?})", s(arg)),
            "one_of" => {
                let alts: Vec<String> = arg
                    .as_array()
                    .expect("one_of: [..]")
                    .iter()
                    .map(|a| format!("{:?}", s(a)))
                    .collect();
                format!("matches!({f}, {})", alts.join(" | "))
            }
            "regex" => {
                let name = arg.as_str().expect("regex name");
                let re = regexes
                    .get(name)
                    .and_then(|r| r.as_str())
                    .unwrap_or_else(|| panic!("unknown regex {name}"));
                format!("{}({f})", regex_fn(re))
            }
            "category" => {
                assert_eq!(field, "source", "category applies to source only");
                let c = match arg.as_str() {
                    Some("SEARCH") => "Search",
                    Some("SOCIAL") => "Social",
                    Some("VIDEO") => "Video",
                    Some("SHOPPING") => "Shopping",
                    Some("AI_ASSISTANT") => "AiAssistant",
                    other => panic!("unknown category {other:?}"),
                };
                format!("f.category == SourceCategory::{c}")
            }
            other => panic!("unknown operator {other}"),
        }
    }

    fn rules(data: &Path) -> String {
        let json: serde_json::Value =
            serde_json::from_str(&read(&data.join("ga4-channel-rules.json")))
                .expect("rules JSON parses");
        let regexes = json["regexes"].as_object().expect("regexes").clone();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// @generated by core/build.rs from core/data/ga4-channel-rules.json; do not edit."
        );
        let _ = writeln!(out, "/// GA4 article the rules come from.");
        let _ = writeln!(
            out,
            "pub const RULES_SOURCE_URL: &str = {:?};",
            json["article"]["url"].as_str().unwrap_or("")
        );
        let _ = writeln!(out, "/// When the rules were copied.");
        let _ = writeln!(
            out,
            "pub const RULES_RETRIEVED: &str = {:?};",
            json["article"]["retrieved"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "/// Evaluates the rules in the article's order; the first match wins."
        );
        let _ = writeln!(out, "#[allow(unused_parens, clippy::all)]");
        let _ = writeln!(
            out,
            "pub(crate) fn evaluate(f: &RuleInput<'_>) -> Channel {{"
        );
        let mut order = Vec::new();
        for ch in json["channels"].as_array().expect("channels") {
            let name = ch["channel"].as_str().expect("channel name");
            let variant = channel_variant(name);
            let _ = writeln!(out, "    // {}", ch["article_rule"].as_str().unwrap_or(""));
            let _ = writeln!(
                out,
                "    if {} {{ return Channel::{variant}; }}",
                cond(&ch["when"], &regexes)
            );
            order.push(format!("Channel::{variant}"));
        }
        let other = channel_variant(json["otherwise"].as_str().expect("otherwise"));
        let _ = writeln!(out, "    Channel::{other}");
        let _ = writeln!(out, "}}");
        order.push(format!("Channel::{other}"));
        let _ = writeln!(
            out,
            "/// The channels in evaluation order (the last is the fallback)."
        );
        let _ = writeln!(
            out,
            "pub const EVALUATION_ORDER: [Channel; {}] = [{}];",
            order.len(),
            order.join(", ")
        );
        out
    }

    // ----------------------------------------------------------- android apps

    /// `data/android-apps.txt`: Android package → the network's web host.
    fn android_apps(data: &Path) -> String {
        let mut map = phf_codegen::Map::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut values = Vec::new();
        for (n, line) in read(&data.join("android-apps.txt")).lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut cols = line.split_whitespace();
            let (Some(pkg), Some(host), None) = (cols.next(), cols.next(), cols.next()) else {
                panic!("android-apps.txt:{}: want PACKAGE HOST", n + 1)
            };
            let pkg = pkg.to_ascii_lowercase();
            assert!(
                seen.insert(pkg.clone()),
                "android-apps.txt:{}: {pkg} twice",
                n + 1
            );
            values.push((pkg, format!("{:?}", host.to_ascii_lowercase())));
        }
        for (k, v) in &values {
            map.entry(k.as_str(), v.as_str());
        }
        format!(
            "// @generated by core/build.rs from core/data/android-apps.txt; do not edit.\n\
             /// Android packages (`android-app://` referrers) → their network's web host.\n\
             pub(crate) static ANDROID_APPS: phf::Map<&'static str, &'static str> = {};\n",
            map.build()
        )
    }

    // ------------------------------------------------------------- exclusions

    fn excluded(data: &Path) -> String {
        let mut pats = Vec::new();
        for line in read(&data.join("excluded-referrers.txt")).lines() {
            let line = line
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !line.is_empty() {
                pats.push(format!("{line:?}"));
            }
        }
        format!(
            "// @generated by core/build.rs from core/data/excluded-referrers.txt; do not edit.\n\
             /// Default excluded referrer patterns (see core/data/excluded-referrers.txt).\n\
             pub const DEFAULT_EXCLUDED_REFERRERS: &[&str] = &[{}];\n",
            pats.join(", ")
        )
    }
}
