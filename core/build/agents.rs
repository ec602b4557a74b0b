//! Build step for `src/agent.rs` and `src/bots.rs`: compiles `data/bots/` (the upstream
//! bot pattern lists, this project's additions, the in-app browser allow-list) and
//! `data/devices.txt` into static tables (`$OUT_DIR/agents.rs`).
//!
//! Every upstream pattern is checked here: a pattern is kept as a plain literal (the
//! common case: matched with one Aho-Corasick automaton), as a regular expression in
//! RE2 syntax (one `RegexSet`), or, for isbot's few look-around patterns, as a core
//! expression with the literal alternatives it must not follow or precede. A pattern
//! that is none of these fails the build, so a refresh can never ship a pattern that is
//! matched differently from upstream without someone looking at it.

use std::fmt::Write as _;
use std::path::Path;

use crate::full::read;

/// How one pattern is matched.
enum Kind {
    /// A plain string (lower case), maybe anchored at the start and / or end.
    Literal {
        text: String,
        start: bool,
        end: bool,
    },
    /// A regular expression in RE2 syntax.
    Regex(String),
    /// `(?<!a|b)core(?!c|d)`: `core` must not follow any of `before` nor be followed by
    /// any of `after` (lower-case literals).
    Look {
        core: String,
        before: Vec<String>,
        after: Vec<String>,
    },
}

/// A pattern's text as plain lower-case literal, if it is one (escapes of punctuation
/// allowed, no other metacharacter).
fn literal_text(p: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next()?;
                if e.is_ascii_alphanumeric() {
                    return None;
                }
                out.push(e.to_ascii_lowercase());
            }
            '.' | '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                return None
            }
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Splits `^text$`-style anchors off a literal pattern.
fn literal(p: &str) -> Option<Kind> {
    let start = p.starts_with('^');
    let body = if start { &p[1..] } else { p };
    let end = body.ends_with('$') && !body.ends_with("\\$");
    let body = if end { &body[..body.len() - 1] } else { body };
    literal_text(body).map(|text| Kind::Literal { text, start, end })
}

/// The literal alternatives of a look-around group's body (`a|b`, `(?:a|b)`).
fn alternatives(body: &str) -> Option<Vec<String>> {
    let body = body
        .strip_prefix("(?:")
        .and_then(|b| b.strip_suffix(')'))
        .unwrap_or(body);
    body.split('|').map(literal_text).collect()
}

fn has_look(p: &str) -> bool {
    p.contains("(?<!") || p.contains("(?<=") || p.contains("(?!") || p.contains("(?=")
}

/// `(?<!..)core(?!..)` with literal alternatives in the look-arounds.
fn look(p: &str) -> Option<Kind> {
    let mut rest = p;
    let mut before = Vec::new();
    if let Some(r) = rest.strip_prefix("(?<!") {
        let close = r.find(')')?;
        before = alternatives(&r[..close])?;
        rest = &r[close + 1..];
    }
    let mut after = Vec::new();
    if let Some(i) = rest.find("(?!") {
        let group = &rest[i + 3..];
        let body = group.strip_suffix(')')?;
        after = alternatives(body)?;
        rest = &rest[..i];
    }
    if has_look(rest) || rest.is_empty() {
        return None;
    }
    regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .unicode(false)
        .utf8(false)
        .build()
        .parse(rest)
        .ok()?;
    Some(Kind::Look {
        core: rest.to_string(),
        before,
        after,
    })
}

/// JavaScript's reading of a `-` next to a class escape inside `[...]` (`[\\w\\d-.]`: a
/// literal dash), written the way RE2 needs it (`\\-`). Nothing else differs for these
/// lists: their patterns are otherwise plain RE2 (isbot's look-arounds are handled apart).
fn js_to_re2(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len());
    let mut in_class = false;
    let mut prev_class_escape = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            out.push(c);
            out.push(e);
            prev_class_escape = in_class && matches!(e, 'd' | 'w' | 's' | 'D' | 'W' | 'S');
            i += 2;
            continue;
        }
        if in_class && c == '-' {
            let next_is_class_escape = chars.get(i + 1) == Some(&'\\')
                && chars
                    .get(i + 2)
                    .is_some_and(|e| matches!(e, 'd' | 'w' | 's' | 'D' | 'W' | 'S'));
            if prev_class_escape || next_is_class_escape {
                out.push_str("\\-");
                prev_class_escape = false;
                i += 1;
                continue;
            }
        }
        if c == '[' && !in_class {
            in_class = true;
        } else if c == ']' && in_class {
            in_class = false;
        }
        prev_class_escape = false;
        out.push(c);
        i += 1;
    }
    out
}

fn classify(list: &str, p: &str) -> Kind {
    let p = &js_to_re2(p);
    if has_look(p) {
        return look(p).unwrap_or_else(|| {
            panic!(
                "data/bots/{list}: the look-around pattern {p:?} is not of the form \
                 (?<!a|b)core(?!c|d) with literal alternatives; teach build/agents.rs to \
                 match it exactly"
            )
        });
    }
    if let Some(k) = literal(p) {
        return k;
    }
    if let Err(e) = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .unicode(false)
        .utf8(false)
        .build()
        .parse(p)
    {
        panic!("data/bots/{list}: pattern {p:?} is not RE2 syntax: {e}");
    }
    Kind::Regex(p.to_string())
}

/// Non-comment lines of a hand-kept file.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim_end()))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

fn json_list(data: &Path, file: &str) -> (serde_json::Value, Vec<String>) {
    let v: serde_json::Value = serde_json::from_str(&read(&data.join("bots").join(file)))
        .unwrap_or_else(|e| panic!("data/bots/{file}: {e}"));
    let patterns = v["patterns"]
        .as_array()
        .unwrap_or_else(|| panic!("data/bots/{file}: no patterns"))
        .iter()
        .map(|p| match p {
            serde_json::Value::String(s) => s.clone(),
            o => o["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("data/bots/{file}: an entry without a pattern"))
                .to_string(),
        })
        .collect();
    (v, patterns)
}

pub fn run(data: &Path, out: &Path) {
    let mut rs =
        String::from("// @generated by core/build/agents.rs from core/data/; do not edit.\n");
    // The lists, in the order a reason is chosen when several match: the named crawler
    // list first (its patterns name one bot each), this project's additions, then
    // isbot's generic patterns.
    let (cua, cua_patterns) = json_list(data, "crawler-user-agents.json");
    let (isbot, isbot_patterns) = json_list(data, "isbot.json");
    let extra: Vec<String> = lines(&read(&data.join("bots").join("extra.txt")))
        .map(|(_, l)| l.trim().to_string())
        .collect();
    let lists: [(&str, &serde_json::Value, &Vec<String>); 3] = [
        ("crawler-user-agents", &cua, &cua_patterns),
        ("closeloop", &serde_json::Value::Null, &extra),
        ("isbot", &isbot, &isbot_patterns),
    ];
    let _ = writeln!(
        rs,
        "/// The bot lists compiled in: (name, registry, version, licence, retrieved, patterns)."
    );
    let _ = writeln!(rs, "pub static BOT_LISTS: [BotListInfo; 3] = [");
    for (name, meta, pats) in &lists {
        let s = |k: &str| meta[k].as_str().unwrap_or("").to_string();
        let (registry, version, licence, retrieved) = if meta.is_null() {
            (
                "core/data/bots/extra.txt".to_string(),
                String::new(),
                "Apache-2.0".to_string(),
                String::new(),
            )
        } else {
            (s("registry"), s("version"), s("licence"), s("retrieved"))
        };
        let _ = writeln!(
            rs,
            "    BotListInfo {{ name: {name:?}, registry: {registry:?}, version: {version:?}, \
             licence: {licence:?}, retrieved: {retrieved:?}, patterns: {} }},",
            pats.len()
        );
    }
    let _ = writeln!(rs, "];");

    let _ = writeln!(rs, "/// Every bot pattern: (list index in BOT_LISTS, pattern as published, how it is matched).");
    let _ = writeln!(rs, "pub(crate) static BOT_PATTERNS: &[BotPattern] = &[");
    let mut seen = std::collections::HashSet::new();
    for (li, (name, _, pats)) in lists.iter().enumerate() {
        for p in pats.iter() {
            // the same pattern in two lists is reported under the first
            if !seen.insert(p.to_ascii_lowercase()) {
                continue;
            }
            let kind = match classify(name, p) {
                Kind::Literal { text, start, end } => {
                    format!("PatternKind::Literal {{ text: {text:?}, start: {start}, end: {end} }}")
                }
                Kind::Regex(r) => format!("PatternKind::Regex({r:?})"),
                Kind::Look {
                    core,
                    before,
                    after,
                } => format!(
                    "PatternKind::Look {{ core: {core:?}, before: &{before:?}, after: &{after:?} }}"
                ),
            };
            let _ = writeln!(
                rs,
                "    BotPattern {{ list: {li}, pattern: {p:?}, kind: {kind} }},"
            );
        }
    }
    let _ = writeln!(rs, "];");

    // In-app browsers: (name, regex)
    let _ = writeln!(
        rs,
        "/// In-app browsers that are people (data/bots/in-app.txt): (browser name, regex)."
    );
    let _ = writeln!(rs, "pub(crate) static IN_APP: &[(&str, &str)] = &[");
    for (n, l) in lines(&read(&data.join("bots").join("in-app.txt"))) {
        let (name, re) = l
            .split_once('\t')
            .unwrap_or_else(|| panic!("data/bots/in-app.txt:{n}: want NAME<TAB>REGEX"));
        check_re("bots/in-app.txt", n, re);
        let _ = writeln!(rs, "    ({:?}, {:?}),", name.trim(), re.trim());
    }
    let _ = writeln!(rs, "];");

    // Device rules: (class, regex)
    let _ = writeln!(
        rs,
        "/// Device rules (data/devices.txt), in order: (class, regex)."
    );
    let _ = writeln!(rs, "pub(crate) static DEVICE_RULES: &[(&str, &str)] = &[");
    for (n, l) in lines(&read(&data.join("devices.txt"))) {
        let (class, re) = l
            .split_once('\t')
            .unwrap_or_else(|| panic!("data/devices.txt:{n}: want CLASS<TAB>REGEX"));
        let class = class.trim();
        assert!(
            matches!(
                class,
                "tv" | "console" | "mobile" | "tablet" | "desktop" | "feature"
            ),
            "data/devices.txt:{n}: unknown class {class:?}"
        );
        check_re("devices.txt", n, re);
        let _ = writeln!(rs, "    ({class:?}, {:?}),", re.trim());
    }
    let _ = writeln!(rs, "];");
    std::fs::write(out.join("agents.rs"), rs).expect("write agents.rs");
}

fn check_re(file: &str, line: usize, re: &str) {
    if let Err(e) = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(re.trim())
    {
        panic!("data/{file}:{line}: not RE2 syntax: {e}");
    }
}
