//! Property tests: the invariants of attribution and sessionisation over random journeys.

use closeloop_core::attribution::{
    credit, window, Conversion, ConversionKind, MarkovModel, Model, Params, TouchRef,
};
use closeloop_core::session::{sessionize, Arrival, SessionEvent};
use proptest::prelude::*;

const DAY: i64 = 86_400_000;
const CHANNELS: [&str; 6] = [
    "Direct",
    "Organic Search",
    "Paid Search",
    "Email",
    "Referral",
    "Display",
];

/// A touch: day (0..120), a few ms (to make exact ties likely), channel index.
fn touch_strategy() -> impl Strategy<Value = (i64, i64, usize)> {
    (0i64..120, 0i64..2, 0usize..CHANNELS.len())
}

fn to_touches(raw: &[(i64, i64, usize)]) -> Vec<TouchRef<'static>> {
    raw.iter()
        .map(|&(day, ms, ch)| {
            let channel = CHANNELS[ch];
            TouchRef {
                at: day * DAY + ms,
                channel,
                direct: channel == "Direct",
            }
        })
        .collect()
}

fn conversion_strategy() -> impl Strategy<Value = Conversion> {
    (
        0i64..150,
        any::<bool>(),
        proptest::option::of(0i64..150),
        proptest::option::of(0i64..150),
    )
        .prop_map(|(day, customer, lead, opp)| Conversion {
            at: day * DAY,
            kind: if customer {
                ConversionKind::Customer
            } else {
                ConversionKind::Lead
            },
            lead_at: lead.map(|d| d * DAY),
            opportunity_at: opp.map(|d| d * DAY),
        })
}

fn params_strategy() -> impl Strategy<Value = Params> {
    (0i64..130, 0i64..30).prop_map(|(lookback, half_life)| Params {
        lookback_ms: lookback * DAY,
        half_life_ms: half_life * DAY,
    })
}

fn markov_strategy() -> impl Strategy<Value = MarkovModel> {
    proptest::collection::vec(
        (
            proptest::collection::vec(0usize..CHANNELS.len(), 0..6),
            any::<bool>(),
        ),
        0..40,
    )
    .prop_map(|journeys| {
        MarkovModel::fit(
            journeys
                .iter()
                .map(|(path, conv)| (path.iter().map(|&c| CHANNELS[c]), *conv)),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn global_allocation_adds_up_to_the_conversions(
        journeys in proptest::collection::vec(
            (proptest::collection::vec(0usize..CHANNELS.len(), 0..6), any::<bool>()),
            0..40,
        ),
    ) {
        // every converting journey credited as a conversion whose touches are its channels:
        // data_driven_global gives each channel C * RE / sum RE, so the credits add up to C
        let markov = MarkovModel::fit(
            journeys.iter().map(|(path, conv)| (path.iter().map(|&c| CHANNELS[c]), *conv)),
        );
        let mut total = 0.0;
        let mut conversions = 0u32;
        let mut per_channel = [0.0f64; CHANNELS.len()];
        for (path, _) in journeys.iter().filter(|(p, c)| *c && !p.is_empty()) {
            let touches: Vec<TouchRef<'static>> = path
                .iter()
                .enumerate()
                .map(|(i, &c)| TouchRef { at: i as i64 * DAY, channel: CHANNELS[c], direct: c == 0 })
                .collect();
            let conv = Conversion::lead(path.len() as i64 * DAY);
            conversions += 1;
            for cr in credit(Model::DataDrivenGlobal, &touches, &conv, &Params::default(), Some(&markov)) {
                total += cr.share;
                per_channel[path[cr.index]] += cr.share;
            }
        }
        prop_assert!((total - f64::from(conversions)).abs() <= 1e-9 * f64::from(conversions.max(1)),
            "credits {} for {} conversions", total, conversions);
        let totals = markov.global_totals();
        for (name, want) in totals {
            let i = CHANNELS.iter().position(|c| *c == name).expect("a known channel");
            prop_assert!((per_channel[i] - want).abs() <= 1e-9, "{}: {} vs {}", name, per_channel[i], want);
        }
    }

    #[test]
    fn credits_sum_to_one_for_every_model(
        raw in proptest::collection::vec(touch_strategy(), 0..25),
        conv in conversion_strategy(),
        params in params_strategy(),
        markov in markov_strategy(),
    ) {
        let touches = to_touches(&raw);
        let in_window = window(&touches, conv.at, params.lookback_ms);
        for model in Model::ALL {
            let credits = credit(model, &touches, &conv, &params, Some(&markov));
            let idx: Vec<usize> = credits.iter().map(|c| c.index).collect();
            prop_assert_eq!(&idx, &in_window, "{} credits the window's touches", model);
            if credits.is_empty() {
                continue;
            }
            if !model.shares_sum_to_one() {
                // a global allocation: finite, non-negative shares (their sum over the chain's
                // conversions is checked by `global_allocation_adds_up_to_the_conversions`)
                for c in &credits {
                    prop_assert!(c.share.is_finite() && c.share >= 0.0, "{}: share {}", model, c.share);
                }
                continue;
            }
            let sum: f64 = credits.iter().map(|c| c.share).sum();
            prop_assert!((sum - 1.0).abs() <= 1e-9, "{}: sum {}", model, sum);
            for c in &credits {
                prop_assert!(c.share.is_finite() && (-1e-12..=1.0 + 1e-12).contains(&c.share),
                    "{}: share {}", model, c.share);
            }
        }
    }

    #[test]
    fn first_and_last_touch_give_everything_to_exactly_one_touch(
        raw in proptest::collection::vec(touch_strategy(), 1..25),
        conv in conversion_strategy(),
        params in params_strategy(),
    ) {
        let touches = to_touches(&raw);
        for (model, pick_last) in [(Model::FirstTouch, false), (Model::LastTouch, true)] {
            let credits = credit(model, &touches, &conv, &params, None);
            if credits.is_empty() {
                continue;
            }
            let ones: Vec<usize> = credits.iter().filter(|c| c.share == 1.0).map(|c| c.index).collect();
            let zeros = credits.iter().filter(|c| c.share == 0.0).count();
            prop_assert_eq!(ones.len(), 1);
            prop_assert_eq!(zeros, credits.len() - 1);
            let expected = if pick_last { credits.last() } else { credits.first() };
            prop_assert_eq!(Some(ones[0]), expected.map(|c| c.index));
        }
    }

    #[test]
    fn adding_a_direct_touch_never_moves_last_non_direct(
        raw in proptest::collection::vec(touch_strategy(), 1..25),
        extra_day in 0i64..150,
        extra_ms in 0i64..2,
        conv in conversion_strategy(),
        params in params_strategy(),
    ) {
        let touches = to_touches(&raw);
        let before = credit(Model::LastNonDirect, &touches, &conv, &params, None);
        let winner_before = before.iter().find(|c| c.share == 1.0).map(|c| c.index);
        let mut more = touches.clone();
        more.push(TouchRef { at: extra_day * DAY + extra_ms, channel: "Direct", direct: true });
        let after = credit(Model::LastNonDirect, &more, &conv, &params, None);
        let winner_after = after.iter().find(|c| c.share == 1.0).map(|c| c.index);
        let any_non_direct = before.iter().any(|c| touches.get(c.index).is_some_and(|t| !t.direct));
        if any_non_direct {
            prop_assert_eq!(winner_before, winner_after);
        } else if let Some(w) = winner_after {
            // all direct: the last touch wins, which may now be the added one
            prop_assert!(more.get(w).is_some_and(|t| t.direct));
        }
    }

    #[test]
    fn sessionisation_does_not_depend_on_arrival_order(
        raw in proptest::collection::vec((0i64..240, 0i64..3, 0u8..8), 0..40)
            .prop_flat_map(|v| {
                let n = v.len();
                (Just(v), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
            })
    ) {
        let (spec, perm) = raw;
        // minutes over 4 hours (gaps around the 30-minute timeout), a few ms for ties,
        // and arrivals of every kind; hosts "a" and "b" are excluded, "c" is not
        let events: Vec<SessionEvent<String>> = spec
            .iter()
            .enumerate()
            .map(|(i, &(min, ms, kind))| SessionEvent {
                id: format!("e{i:03}"),
                at: min * 60_000 + ms,
                path: format!("/p{}", kind % 3),
                arrival: match kind {
                    0 | 1 => Arrival::Internal,
                    2 => Arrival::Direct,
                    3 => Arrival::Tagged("news".to_owned()),
                    4 => Arrival::Tagged("ads".to_owned()),
                    5 => Arrival::Referral { host: "a".into(), source: "a".to_owned() },
                    6 => Arrival::Referral { host: "b".into(), source: "b".to_owned() },
                    _ => Arrival::Referral { host: "c".into(), source: "c".to_owned() },
                },
            })
            .collect();
        let shuffled: Vec<SessionEvent<String>> = perm.iter().map(|&i| events[i].clone()).collect();
        let excluded = |h: &str| h == "a" || h == "b";
        let describe = |evs: &[SessionEvent<String>]| {
            sessionize(evs, excluded)
                .into_iter()
                .map(|s| {
                    let ids: Vec<String> = s.events.iter().map(|&i| evs[i].id.clone()).collect();
                    (s.start, s.end, s.touch, s.landing_path, ids)
                })
                .collect::<Vec<_>>()
        };
        let a = describe(&events);
        let b = describe(&shuffled);
        prop_assert_eq!(&a, &b);
        // every event is in exactly one session
        let total: usize = a.iter().map(|s| s.4.len()).sum();
        prop_assert_eq!(total, events.len());
    }

    /// The steps of the non-converting journeys (previous channel, channel) fit the same
    /// chain as the journeys themselves.
    #[test]
    fn markov_steps_fit_the_same_chain_as_journeys(
        journeys in proptest::collection::vec(
            (proptest::collection::vec(0usize..CHANNELS.len(), 0..6), any::<bool>()),
            0..40,
        ),
    ) {
        let names = |path: &Vec<usize>| path.iter().map(|&c| CHANNELS[c]).collect::<Vec<_>>();
        let whole = MarkovModel::fit(journeys.iter().map(|(p, conv)| (names(p), *conv)));
        let mut steps: std::collections::BTreeMap<(Option<&str>, &str), u64> = Default::default();
        for (path, _) in journeys.iter().filter(|(_, conv)| !conv) {
            let mut previous = None;
            for c in names(path) {
                *steps.entry((previous, c)).or_default() += 1;
                previous = Some(c);
            }
        }
        let stepped = MarkovModel::fit_with_steps(
            journeys.iter().filter(|(_, conv)| *conv).map(|(p, _)| (names(p), true, 1)),
            steps.iter().map(|(&(p, c), &n)| (p, c, n)),
        );
        prop_assert_eq!(whole, stepped);
    }
}

/// Random report data for the pages report: sessions of 6 visitors (visitors 0 and 3 are
/// one lead's two devices, 1 and 2 are leads too, 5 is a bot), page views on 4 paths, and
/// lead / customer / stage conversions a few hours after one of the sessions starts, with
/// or without a page and session. Times are whole hours, so that a view often falls exactly
/// at a conversion or at the start of its window.
fn pages_data_strategy() -> impl Strategy<Value = closeloop_core::report::ReportData> {
    use closeloop_core::report::{ConversionRow, PageViewRow, ReportData, SessionRow};
    const HOUR: i64 = 3_600_000;
    const PATHS: [&str; 4] = ["/", "/pricing", "/demo", "/blog"];
    let session = (0usize..6, 0i64..20, 0u8..4);
    let view = (0usize..12, 0i64..48, 0usize..4);
    let conversion = (
        0usize..12,
        0i64..72,
        0u8..3,
        0usize..5,
        0usize..13,
        1i64..100_000,
    );
    (
        proptest::collection::vec(session, 1..12),
        proptest::collection::vec(view, 0..40),
        proptest::collection::vec(conversion, 0..8),
    )
        .prop_map(|(sessions, views, conversions)| {
            let lead_of = |visitor: usize| match visitor {
                0 | 3 => Some("lead0".to_owned()),
                1 | 2 => Some(format!("lead{visitor}")),
                _ => None,
            };
            let sessions: Vec<SessionRow> = sessions
                .iter()
                .enumerate()
                .map(|(i, &(visitor, day, attrs))| SessionRow {
                    id: format!("s{i:02}"),
                    visitor: format!("v{visitor}"),
                    lead: lead_of(visitor),
                    started_at: day * DAY,
                    channel: CHANNELS[usize::from(attrs) % CHANNELS.len()].to_owned(),
                    source: "google".into(),
                    medium: "organic".into(),
                    landing_page: "/".into(),
                    is_bot: visitor == 5,
                    country: Some(if attrs % 2 == 0 { "DE" } else { "US" }.to_owned()),
                    device: Some("desktop".into()),
                    ..SessionRow::default()
                })
                .collect();
            let pageviews: Vec<PageViewRow> = views
                .iter()
                .filter_map(|&(s, offset, path)| {
                    let s = sessions.get(s % sessions.len())?;
                    Some(PageViewRow {
                        session: s.id.clone(),
                        path: PATHS[path].to_owned(),
                        at: s.started_at + offset * HOUR,
                    })
                })
                .collect();
            let conversions = conversions
                .iter()
                .enumerate()
                .filter_map(|(i, &(after, hours, kind, page, session, revenue))| {
                    let s = sessions.get(after % sessions.len())?;
                    Some(ConversionRow {
                        id: format!("c{i}"),
                        lead: s.lead.clone().unwrap_or_else(|| "lead1".to_owned()),
                        kind: ["lead", "Customer", "opportunity"][usize::from(kind)].to_owned(),
                        at: s.started_at + hours * HOUR,
                        revenue,
                        page: PATHS.get(page).map(|p| (*p).to_owned()),
                        session: sessions.get(session).map(|s| s.id.clone()),
                        ..ConversionRow::default()
                    })
                })
                .collect();
            ReportData {
                sessions,
                conversions,
                pageviews,
                spend: Vec::new(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The store's counts (`PageCount::of`, the SQL's definition) give the pages report that
    /// `pages` computes through `assists::pages_report`, for any range, lookback, segment
    /// and bot setting.
    #[test]
    fn pages_from_counts_equal_pages(
        data in pages_data_strategy(),
        from_day in 0i64..15,
        days in 1i64..25,
        lookback_days in 1i64..4,
        include_bots in any::<bool>(),
        country in proptest::option::of(prop_oneof![Just("de"), Just("US")]),
        channel in proptest::option::of(Just("email")),
    ) {
        use closeloop_core::report::{pages, pages_counted, Filters, PageCount, PageSort, Query};
        let mut q = Query::new(from_day * DAY, (from_day + days) * DAY);
        q.lookback_days = lookback_days;
        q.include_bots = include_bots;
        q.filters = Filters {
            country: country.map(str::to_owned),
            channel: channel.map(str::to_owned),
            ..Filters::default()
        };
        let counted = PageCount::of(&data, &q);
        for (sort, descending) in [(PageSort::Views, true), (PageSort::AssistedRevenue, false)] {
            prop_assert_eq!(pages(&data, &q, sort, descending), pages_counted(&counted, sort, descending));
        }
    }
}
