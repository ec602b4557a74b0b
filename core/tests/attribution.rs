//! Runs every attribution case file in `tests/cases/attribution/*.json` under every model.
//!
//! A case gives either `touches` directly, or `visitors` with their raw events (sessionised
//! here with the case's excluded referrer hosts, grouped into the converting lead by email), a
//! `conversion`, optional `journeys` for `data_driven`, and the credit each model must give,
//! worked out by hand in the case's `why`. Shares may be written as numbers or as fractions
//! (`"5/11"`); every touch in the window must be listed (zeros too), touches outside the window
//! must not be. Tolerance 1e-9.

use std::collections::BTreeMap;
use std::path::Path;

use closeloop_core::attribution::{credit, Conversion, MarkovModel, Model, Params, TouchRef};
use closeloop_core::identity::Leads;
use closeloop_core::session::{sessionize, SessionEvent};
use serde::Deserialize;
use serde_json::Value;

const DAY: f64 = 86_400_000.0;
const TOLERANCE: f64 = 1e-9;

#[derive(Debug, Deserialize, Clone, PartialEq)]
struct CaseSource {
    channel: String,
    key: String,
}

#[derive(Debug, Deserialize)]
struct CaseTouch {
    id: String,
    day: f64,
    #[serde(default)]
    ms: i64,
    channel: String,
    #[serde(default)]
    direct: bool,
}

#[derive(Debug, Deserialize)]
struct CaseEvent {
    id: String,
    day: f64,
    #[serde(default)]
    ms: i64,
    #[serde(default = "root")]
    path: String,
    arrival: closeloop_core::session::Arrival<CaseSource>,
}

fn root() -> String {
    "/".into()
}

#[derive(Debug, Deserialize)]
struct CaseVisitor {
    id: String,
    #[serde(default)]
    emails: Vec<String>,
    events: Vec<CaseEvent>,
}

#[derive(Debug, Deserialize)]
struct CaseConversion {
    kind: String,
    day: f64,
    #[serde(default)]
    ms: i64,
    lead_day: Option<f64>,
    opportunity_day: Option<f64>,
    #[serde(default)]
    revenue: f64,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CaseJourney {
    channels: Vec<String>,
    converted: bool,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    why: Value,
    lookback_days: Option<f64>,
    half_life_days: Option<f64>,
    #[serde(default)]
    touches: Vec<CaseTouch>,
    #[serde(default)]
    visitors: Vec<CaseVisitor>,
    #[serde(default)]
    excluded_hosts: Vec<String>,
    conversion: CaseConversion,
    journeys: Option<Vec<CaseJourney>>,
    /// Expected data_driven model figures (conversion probability, removal effects).
    markov: Option<MarkovExpect>,
    expected: BTreeMap<String, BTreeMap<String, Value>>,
    /// Optional: revenue credited per model and touch.
    #[serde(default)]
    expected_revenue: BTreeMap<String, BTreeMap<String, Value>>,
    /// Optional: `data_driven_global`'s total per channel over the converting `journeys`
    /// (each credited as a lead conversion whose touches are its channels, one day apart).
    #[serde(default)]
    global_totals: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct MarkovExpect {
    conversion_probability: Value,
    removal_effects: BTreeMap<String, Value>,
    normalised: BTreeMap<String, Value>,
    #[serde(default)]
    transitions: Vec<(String, String, Value)>,
}

/// Parses a number or a string `"a/b"` (or `"a"`), written by hand in a case file.
fn number(v: &Value, ctx: &str) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or_else(|| panic!("{ctx}: bad number")),
        Value::String(s) => match s.split_once('/') {
            Some((a, b)) => {
                let a: f64 = a
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{ctx}: bad {s}"));
                let b: f64 = b
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{ctx}: bad {s}"));
                a / b
            }
            None => s
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{ctx}: bad {s}")),
        },
        _ => panic!("{ctx}: expected a number or a fraction string"),
    }
}

fn ms(day: f64, extra: i64) -> i64 {
    (day * DAY).round() as i64 + extra
}

/// A touch of the case: id (first event id or the case's touch id), start, channel, direct.
struct Touch {
    id: String,
    at: i64,
    channel: String,
    direct: bool,
}

fn touches_of(case: &Case) -> Vec<Touch> {
    let mut touches: Vec<Touch> = case
        .touches
        .iter()
        .map(|t| Touch {
            id: t.id.clone(),
            at: ms(t.day, t.ms),
            channel: t.channel.clone(),
            direct: t.direct,
        })
        .collect();
    if !case.visitors.is_empty() {
        let email = case
            .conversion
            .email
            .as_deref()
            .unwrap_or_else(|| panic!("{}: visitors need conversion.email", case.name));
        let leads = Leads::build(
            case.visitors
                .iter()
                .flat_map(|v| v.emails.iter().map(move |e| (v.id.as_str(), e.as_str()))),
        );
        let lead_visitors: Vec<&str> = leads.visitors_of(email).collect();
        assert!(
            !lead_visitors.is_empty(),
            "{}: no visitor for {email}",
            case.name
        );
        for visitor in case
            .visitors
            .iter()
            .filter(|v| lead_visitors.contains(&v.id.as_str()))
        {
            let events: Vec<SessionEvent<CaseSource>> = visitor
                .events
                .iter()
                .map(|e| SessionEvent {
                    id: e.id.clone(),
                    at: ms(e.day, e.ms),
                    path: e.path.clone(),
                    arrival: e.arrival.clone(),
                })
                .collect();
            for s in sessionize(&events, |host| {
                case.excluded_hosts.iter().any(|h| h == host)
            }) {
                let first = s
                    .events
                    .first()
                    .and_then(|&i| events.get(i))
                    .expect("non-empty");
                touches.push(Touch {
                    id: first.id.clone(),
                    at: s.start,
                    channel: s
                        .touch
                        .as_ref()
                        .map_or_else(|| "Direct".to_owned(), |t| t.channel.clone()),
                    direct: s.touch.is_none(),
                });
            }
        }
    }
    // the edge's convention: sessions sorted by start, then id
    touches.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    touches
}

fn run_case(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("readable case");
    let case: Case = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: bad case file: {e}", path.display()));
    assert!(
        case.why.as_str().is_some_and(|w| !w.is_empty())
            || case.why.as_array().is_some_and(|w| !w.is_empty()),
        "{}: every case explains its arithmetic in `why`",
        case.name
    );
    let touches = touches_of(&case);
    let refs: Vec<TouchRef<'_>> = touches
        .iter()
        .map(|t| TouchRef {
            at: t.at,
            channel: &t.channel,
            direct: t.direct,
        })
        .collect();
    let mut params = Params::default();
    if let Some(d) = case.lookback_days {
        params.lookback_ms = ms(d, 0);
    }
    if let Some(d) = case.half_life_days {
        params.half_life_ms = ms(d, 0);
    }
    let c = &case.conversion;
    let at = ms(c.day, c.ms);
    let conv = match c.kind.as_str() {
        "lead" => Conversion::lead(at),
        "customer" => Conversion::customer(
            at,
            c.lead_day.map(|d| ms(d, 0)),
            c.opportunity_day.map(|d| ms(d, 0)),
        ),
        other => panic!("{}: unknown conversion kind {other}", case.name),
    };
    let markov = case.journeys.as_ref().map(|journeys| {
        MarkovModel::fit(journeys.iter().flat_map(|j| {
            std::iter::repeat_n(
                (j.channels.iter().map(String::as_str), j.converted),
                j.count,
            )
        }))
    });
    if let (Some(m), Some(expect)) = (&markov, &case.markov) {
        let ctx = format!("{}: markov", case.name);
        close(
            m.conversion_probability(),
            number(&expect.conversion_probability, &ctx),
            &ctx,
        );
        for (ch, v) in &expect.removal_effects {
            close(
                m.removal_effect(ch),
                number(v, &ctx),
                &format!("{ctx} removal {ch}"),
            );
        }
        let normalised: BTreeMap<&str, f64> = m.normalised_removal_effects().into_iter().collect();
        for (ch, v) in &expect.normalised {
            let got = normalised.get(ch.as_str()).copied().unwrap_or(f64::NAN);
            close(got, number(v, &ctx), &format!("{ctx} normalised {ch}"));
        }
        for (from, to, v) in &expect.transitions {
            let got = m.transition_probability(state(from), state(to));
            close(got, number(v, &ctx), &format!("{ctx} p({from} -> {to})"));
        }
    }

    if !case.global_totals.is_empty() {
        let (Some(m), Some(journeys)) = (&markov, &case.journeys) else {
            panic!("{}: global_totals need journeys", case.name);
        };
        let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
        let mut conversions = 0.0;
        for j in journeys.iter().filter(|j| j.converted) {
            let refs: Vec<TouchRef<'_>> = j
                .channels
                .iter()
                .enumerate()
                .map(|(i, ch)| TouchRef {
                    at: ms(i as f64, 0),
                    channel: ch,
                    direct: false,
                })
                .collect();
            let conv = Conversion::lead(ms(j.channels.len() as f64, 0));
            for _ in 0..j.count {
                conversions += 1.0;
                for cr in credit(Model::DataDrivenGlobal, &refs, &conv, &params, Some(m)) {
                    *totals.entry(refs[cr.index].channel).or_default() += cr.share;
                }
            }
        }
        let ctx = format!("{}: global totals", case.name);
        for (ch, v) in &case.global_totals {
            let got = totals.get(ch.as_str()).copied().unwrap_or(0.0);
            close(got, number(v, &ctx), &format!("{ctx} {ch}"));
        }
        for (ch, total) in m.global_totals() {
            close(
                total,
                totals.get(ch).copied().unwrap_or(0.0),
                &format!("{ctx} {ch} (model)"),
            );
        }
        close(
            totals.values().sum(),
            conversions,
            &format!("{ctx}: add up to C"),
        );
    }

    let mut checked = 0;
    for model in Model::ALL {
        let expected = case
            .expected
            .get(model.as_str())
            .unwrap_or_else(|| panic!("{}: no expected credit for {model}", case.name));
        let credits = credit(model, &refs, &conv, &params, markov.as_ref());
        let got: BTreeMap<&str, f64> = credits
            .iter()
            .map(|cr| (touches[cr.index].id.as_str(), cr.share))
            .collect();
        let ctx = format!("{} [{model}]", case.name);
        let want_ids: Vec<&str> = expected.keys().map(String::as_str).collect();
        let got_ids: Vec<&str> = got.keys().copied().collect();
        assert_eq!(got_ids, want_ids, "{ctx}: touches in the window");
        for (id, v) in expected {
            close(
                got[id.as_str()],
                number(v, &ctx),
                &format!("{ctx} touch {id}"),
            );
        }
        if !credits.is_empty() && model.shares_sum_to_one() {
            let sum: f64 = credits.iter().map(|c| c.share).sum();
            close(sum, 1.0, &format!("{ctx} sum"));
        }
        if let Some(rev) = case.expected_revenue.get(model.as_str()) {
            for (id, v) in rev {
                close(
                    got[id.as_str()] * c.revenue,
                    number(v, &ctx),
                    &format!("{ctx} revenue {id}"),
                );
            }
        }
        checked += 1;
    }
    checked
}

fn state(name: &str) -> closeloop_core::attribution::State<'_> {
    use closeloop_core::attribution::State;
    match name {
        "start" => State::Start,
        "conversion" => State::Conversion,
        "null" => State::Null,
        ch => State::Channel(ch),
    }
}

fn close(got: f64, want: f64, ctx: &str) {
    assert!(
        (got - want).abs() <= TOLERANCE,
        "{ctx}: got {got}, expected {want}"
    );
}

#[test]
fn every_attribution_case_under_every_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/attribution");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("case dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the hand-written cases, found {}",
        files.len()
    );
    let mut checked = 0;
    for f in &files {
        checked += run_case(f);
    }
    assert_eq!(checked, files.len() * Model::ALL.len());
}

#[test]
fn model_names_round_trip() {
    let names = [
        "first_touch",
        "last_touch",
        "last_non_direct",
        "linear",
        "position_based",
        "time_decay",
        "w_shaped",
        "full_path",
        "data_driven",
        "data_driven_global",
    ];
    for (model, name) in Model::ALL.into_iter().zip(names) {
        assert_eq!(model.as_str(), name);
        assert_eq!(name.parse::<Model>(), Ok(model));
        assert_eq!(
            serde_json::to_value(model).unwrap(),
            Value::String(name.into())
        );
    }
    let err = "u_shaped".parse::<Model>().unwrap_err();
    assert!(err.to_string().contains("u_shaped"));
    assert!(err.to_string().contains("data_driven"));
}

#[test]
fn no_touch_in_window_gives_no_credit() {
    // one touch 91 days before the conversion, lookback 90 days
    let touches = [TouchRef {
        at: 0,
        channel: "Email",
        direct: false,
    }];
    let conv = Conversion::lead(ms(91.0, 0));
    for model in Model::ALL {
        assert!(credit(model, &touches, &conv, &Params::default(), None).is_empty());
    }
}

#[test]
fn time_decay_with_zero_half_life_gives_all_to_the_latest() {
    // limit of a vanishing half-life: the latest touch (day 2) takes everything
    let touches = [
        TouchRef {
            at: 0,
            channel: "Email",
            direct: false,
        },
        TouchRef {
            at: ms(2.0, 0),
            channel: "Email",
            direct: false,
        },
    ];
    let params = Params {
        half_life_ms: 0,
        ..Params::default()
    };
    let credits = credit(
        Model::TimeDecay,
        &touches,
        &Conversion::lead(ms(3.0, 0)),
        &params,
        None,
    );
    let shares: Vec<f64> = credits.iter().map(|c| c.share).collect();
    assert_eq!(shares, [0.0, 1.0]);
}

#[test]
fn markov_fit_does_not_depend_on_journey_order() {
    let a: Vec<(Vec<&str>, bool)> = vec![
        (vec!["Email", "Paid Search"], true),
        (vec!["Organic Search"], false),
        (vec!["Paid Search", "Organic Search"], true),
    ];
    let mut b = a.clone();
    b.reverse();
    let fit = |j: &Vec<(Vec<&str>, bool)>| {
        MarkovModel::fit(j.iter().map(|(c, conv)| (c.iter().copied(), *conv)))
    };
    assert_eq!(fit(&a), fit(&b));
}
