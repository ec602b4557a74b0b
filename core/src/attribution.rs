//! Attribution: how much of one conversion each touch gets, for every model of the design.
//!
//! # The touches of a conversion
//!
//! For a conversion at time `T`, the touches are the lead's sessions (of all its visitors) that
//! started at or before `T` and not more than the lookback window before `T`: both ends are
//! inclusive, `T - lookback <= start <= T` ([`window`]). They are ordered by start time; touches
//! that start at the same millisecond keep the order in which the caller gave them (the edge
//! passes sessions sorted by start, then session id, so the result is deterministic).
//!
//! # The models ([`Model`])
//!
//! With touches `t1..tn` in that order:
//! - `first_touch`: 1 to t1; `last_touch`: 1 to tn.
//! - `last_non_direct`: 1 to the latest touch that is not direct; 1 to tn when all are direct.
//! - `linear`: 1/n each.
//! - `position_based`: n=1 → 1; n=2 → 0.5 each; n≥3 → 0.4 to t1, 0.4 to tn, 0.2 split evenly
//!   among t2..t(n-1).
//! - `time_decay`: weight `2^(-(T - ti) / half_life)`, normalised to sum to 1. A half-life of
//!   zero or less is the limit of a vanishing half-life: everything to the latest touch (split
//!   evenly when several touches share that latest start).
//! - `w_shaped`: key touches first (t1), lead-creation and opportunity, 0.3 each; the other
//!   touches share 0.1 evenly. `full_path`: the same with a fourth key touch, the closing touch
//!   (tn of a customer conversion), 0.225 each and 0.1 for the others. Details:
//!   - the lead-creation touch is the latest touch that started at or before the lead was
//!     created ([`Conversion::lead_at`]; for a lead conversion that is tn); the opportunity
//!     touch is the latest touch at or before the deal first reached an open stage
//!     ([`Conversion::opportunity_at`]); the closing touch exists only for customer
//!     conversions. With several devices "latest touch at or before" may pick another device's
//!     session that started in between; the design's rule is by time, and so is this one.
//!   - a key role whose touch does not exist (no opportunity stage, a lead conversion has no
//!     opportunity or closing touch, a lead created before the lookback window) is left out;
//!   - key roles that fall on the same touch add their shares;
//!   - when there are no other touches, the 0.1 is split evenly among the distinct key touches;
//!   - the weights are then rescaled to sum to 1.
//! - `data_driven`: weights each touch by the removal effect of its channel in a first-order
//!   Markov chain fitted over all journeys of the site ([`MarkovModel`]), normalised within the
//!   conversion. When every touch's channel has a removal effect of 0 (a channel the model has
//!   never seen, a model fitted on no conversions, or no model given) it falls back to linear.
//!   So `data_driven` splits **each conversion among its own touches**: a conversion whose
//!   only touch is Email gives Email all of it, whatever the chain says about Email.
//! - `data_driven_global`: the **global allocation** of Anderl et al. (2016, "Mapping the
//!   customer journey: lessons learned from graph-based online attribution modeling"), which
//!   R's and Python's `ChannelAttribution` (`markov_model`, `total_conversions`) report: the
//!   `C` conversions the chain was fitted on are shared among the channels in proportion to
//!   their removal effects, channel `c` getting `C · RE(c) / Σ RE`, whichever conversions its
//!   touches were in. To fit a report whose rows are touches (sources, campaigns, landing
//!   pages...), channel `c`'s total is shared equally among its touches in the chain's
//!   converting journeys (`n(c)` of them): each touch of `c` gets `C · RE(c) / Σ RE / n(c)`
//!   ([`MarkovModel::global_share`]). Summed per channel over the conversions the chain was
//!   fitted on, the credit is exactly Anderl's allocation (solved exactly, where
//!   `ChannelAttribution` simulates), and it adds up to `C`; but the touches of **one**
//!   conversion need not sum to 1 (that is the point of a global allocation). Two
//!   differences from `ChannelAttribution`, both written down: `Σ RE` runs over the channels
//!   that have a touch in a converting journey (a channel seen only in journeys that did not
//!   convert has no touch to carry credit; its removal effect is left out, so the others'
//!   shares still add up to `C`); and revenue is credited in the touches' shares of their own
//!   conversion's revenue, as for every model, where `ChannelAttribution` simulates conversion
//!   values separately. Without a fitted chain, or when none of a conversion's touches has a
//!   share, it falls back to linear, as `data_driven` does.
//!
//! Credits of one conversion always sum to 1 when it has at least one touch in the window
//! (except under `data_driven_global`, see above), and revenue is credited in the same shares
//! (`share * revenue`). A conversion with no touch in the window gets no credits at all (an
//! empty vector); reports show it as unattributed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// The default lookback window: 90 days.
pub const DEFAULT_LOOKBACK_MS: i64 = 90 * DAY_MS;
/// The default `time_decay` half-life: 7 days.
pub const DEFAULT_HALF_LIFE_MS: i64 = 7 * DAY_MS;

/// An attribution model. Its wire name (`model=` query parameter) is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// All credit to the first touch.
    FirstTouch,
    /// All credit to the last touch.
    LastTouch,
    /// All credit to the latest non-direct touch (the last touch when all are direct).
    LastNonDirect,
    /// Equal credit to every touch.
    Linear,
    /// U-shaped: 40 % first, 40 % last, 20 % shared by the middle.
    PositionBased,
    /// Exponential decay by age with a half-life.
    TimeDecay,
    /// 30 % each to the first, lead-creation and opportunity touches, 10 % to the rest.
    WShaped,
    /// 22.5 % each to the first, lead-creation, opportunity and closing touches, 10 % to the rest.
    FullPath,
    /// Markov-chain removal effects, splitting each conversion among its own touches.
    DataDriven,
    /// Markov-chain removal effects, allocating the range's conversions globally among the
    /// channels (Anderl et al. 2016, as R's and Python's `ChannelAttribution` report it).
    DataDrivenGlobal,
}

impl Model {
    /// Every model, in the design's order.
    pub const ALL: [Model; 10] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay,
        Model::WShaped,
        Model::FullPath,
        Model::DataDriven,
        Model::DataDrivenGlobal,
    ];

    /// The snake_case wire name, e.g. `"last_non_direct"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::LastNonDirect => "last_non_direct",
            Model::Linear => "linear",
            Model::PositionBased => "position_based",
            Model::TimeDecay => "time_decay",
            Model::WShaped => "w_shaped",
            Model::FullPath => "full_path",
            Model::DataDriven => "data_driven",
            Model::DataDrivenGlobal => "data_driven_global",
        }
    }

    /// Whether the model needs the site's fitted Markov chain ([`MarkovModel`]):
    /// `data_driven` and `data_driven_global`.
    pub fn needs_chain(self) -> bool {
        matches!(self, Model::DataDriven | Model::DataDrivenGlobal)
    }

    /// Whether the credits of one conversion sum to 1 under this model (every model but
    /// `data_driven_global`, whose allocation is global).
    pub fn shares_sum_to_one(self) -> bool {
        self != Model::DataDrivenGlobal
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel(pub String);

impl fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown attribution model `{}`; expected one of ",
            self.0
        )?;
        for (i, model) in Model::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(model.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownModel {}

impl FromStr for Model {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownModel(s.to_owned()))
    }
}

/// Model parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// The lookback window in ms (default 90 days): touches that started more than this before
    /// the conversion are left out. A negative value is treated as 0.
    pub lookback_ms: i64,
    /// The `time_decay` half-life in ms (default 7 days).
    pub half_life_ms: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            lookback_ms: DEFAULT_LOOKBACK_MS,
            half_life_ms: DEFAULT_HALF_LIFE_MS,
        }
    }
}

/// One touch (a session's entry source) as attribution sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TouchRef<'a> {
    /// When the session started (ms since the epoch).
    pub at: i64,
    /// Its channel (or whatever key `data_driven` should learn from, e.g. the GA4 channel group).
    pub channel: &'a str,
    /// Whether it is a direct touch (no referrer, no tags).
    pub direct: bool,
}

impl<'a> TouchRef<'a> {
    /// The adapter from a classified touch (`channel::classify`) that started at `at`: its
    /// channel group's name, and direct when the channel is `Direct`.
    pub fn from_touch(at: i64, touch: &'a crate::channel::Touch) -> TouchRef<'a> {
        TouchRef {
            at,
            channel: touch.channel.as_str(),
            direct: touch.channel.is_direct(),
        }
    }
}

/// What kind of conversion is being credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversionKind {
    /// The visitor became a lead (`T` = lead creation).
    Lead,
    /// The lead became a customer (`T` = close date).
    Customer,
}

/// One conversion to credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// Its time `T` (ms since the epoch).
    pub at: i64,
    /// Lead or customer.
    pub kind: ConversionKind,
    /// When the lead was created (the lead-creation touch of `w_shaped`/`full_path`). Ignored
    /// for lead conversions (it is `at`).
    pub lead_at: Option<i64>,
    /// When the deal first reached an open stage such as `opportunity`, if the CRM said so.
    /// Ignored for lead conversions.
    pub opportunity_at: Option<i64>,
}

impl Conversion {
    /// A lead conversion at `at`.
    pub fn lead(at: i64) -> Conversion {
        Conversion {
            at,
            kind: ConversionKind::Lead,
            lead_at: Some(at),
            opportunity_at: None,
        }
    }

    /// A customer conversion closed at `at`, for a lead created at `lead_at`, with an optional
    /// opportunity time.
    pub fn customer(at: i64, lead_at: Option<i64>, opportunity_at: Option<i64>) -> Conversion {
        Conversion {
            at,
            kind: ConversionKind::Customer,
            lead_at,
            opportunity_at,
        }
    }
}

/// One touch's share of one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Credit {
    /// The touch, as an index into the slice given to [`credit`].
    pub index: usize,
    /// Its share, in `[0, 1]`; the shares of one conversion sum to 1.
    pub share: f64,
}

/// The touches of a conversion at `at`: the indices of the touches with
/// `at - lookback_ms <= touch.at <= at`, ordered by start time (ties keep the input order).
pub fn window(touches: &[TouchRef<'_>], at: i64, lookback_ms: i64) -> Vec<usize> {
    let from = at.saturating_sub(lookback_ms.max(0));
    let mut idx: Vec<usize> = touches
        .iter()
        .enumerate()
        .filter(|(_, t)| t.at >= from && t.at <= at)
        .map(|(i, _)| i)
        .collect();
    idx.sort_by_key(|&i| (touches.get(i).map_or(0, |t| t.at), i));
    idx
}

/// Credits one conversion under one model.
///
/// Returns one [`Credit`] per touch in the window, in time order, summing to 1 (empty when the
/// window is empty; `data_driven_global` need not sum to 1, see the [module docs](self)).
/// `markov` is the fitted model used by `data_driven` and `data_driven_global` (ignored by
/// the others); with `None`, both are linear.
///
/// ```
/// use closeloop_core::attribution::{credit, Conversion, Model, Params, TouchRef};
/// let day = 86_400_000;
/// let touches = [
///     TouchRef { at: 0, channel: "Organic Search", direct: false },
///     TouchRef { at: 2 * day, channel: "Direct", direct: true },
/// ];
/// let conv = Conversion::lead(3 * day);
/// let credits = credit(Model::LastNonDirect, &touches, &conv, &Params::default(), None);
/// assert_eq!(credits.len(), 2);
/// assert_eq!((credits[0].index, credits[0].share), (0, 1.0));
/// assert_eq!(credits[1].share, 0.0);
/// ```
pub fn credit(
    model: Model,
    touches: &[TouchRef<'_>],
    conv: &Conversion,
    params: &Params,
    markov: Option<&MarkovModel>,
) -> Vec<Credit> {
    let win = window(touches, conv.at, params.lookback_ms);
    let in_window: Vec<TouchRef<'_>> = win
        .iter()
        .filter_map(|&i| touches.get(i).copied())
        .collect();
    let n = in_window.len();
    if n == 0 {
        return Vec::new();
    }
    let weights = match model {
        Model::FirstTouch => one_hot(n, 0),
        Model::LastTouch => one_hot(n, n - 1),
        Model::LastNonDirect => {
            let pos = in_window.iter().rposition(|t| !t.direct).unwrap_or(n - 1);
            one_hot(n, pos)
        }
        Model::Linear => vec![1.0; n],
        Model::PositionBased => position_based(n),
        Model::TimeDecay => time_decay(&in_window, conv.at, params.half_life_ms),
        Model::WShaped => key_touch_weights(&in_window, conv, false),
        Model::FullPath => key_touch_weights(&in_window, conv, true),
        Model::DataDriven => data_driven(&in_window, markov),
        Model::DataDrivenGlobal => {
            let shares = data_driven_global(&in_window, markov);
            return win
                .into_iter()
                .zip(shares)
                .map(|(index, share)| Credit { index, share })
                .collect();
        }
    };
    let shares = normalise(weights);
    win.into_iter()
        .zip(shares)
        .map(|(index, share)| Credit { index, share })
        .collect()
}

/// Credits one conversion under every model (for a lead's journey view), in [`Model::ALL`]
/// order.
pub fn credit_all(
    touches: &[TouchRef<'_>],
    conv: &Conversion,
    params: &Params,
    markov: Option<&MarkovModel>,
) -> Vec<(Model, Vec<Credit>)> {
    Model::ALL
        .into_iter()
        .map(|m| (m, credit(m, touches, conv, params, markov)))
        .collect()
}

fn one_hot(n: usize, pos: usize) -> Vec<f64> {
    (0..n).map(|i| if i == pos { 1.0 } else { 0.0 }).collect()
}

/// Divides by the sum; a zero or non-finite sum falls back to equal shares.
fn normalise(weights: Vec<f64>) -> Vec<f64> {
    let n = weights.len();
    let sum: f64 = weights.iter().sum();
    if n == 0 {
        return weights;
    }
    if !(sum.is_finite() && sum > 0.0) || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return vec![1.0 / n as f64; n];
    }
    weights.into_iter().map(|w| w / sum).collect()
}

fn position_based(n: usize) -> Vec<f64> {
    match n {
        1 => vec![1.0],
        2 => vec![0.5, 0.5],
        _ => {
            let middle = 0.2 / (n - 2) as f64;
            (0..n)
                .map(|i| if i == 0 || i == n - 1 { 0.4 } else { middle })
                .collect()
        }
    }
}

fn time_decay(touches: &[TouchRef<'_>], at: i64, half_life_ms: i64) -> Vec<f64> {
    // Weights relative to the latest touch (2^0 = 1) so that nothing underflows to an all-zero
    // vector; the common factor 2^(-(T - tn)/h) cancels in the normalisation.
    let latest = touches.iter().map(|t| t.at).max().unwrap_or(at);
    touches
        .iter()
        .map(|t| {
            let age = latest.saturating_sub(t.at) as f64;
            if half_life_ms <= 0 {
                if age == 0.0 {
                    1.0
                } else {
                    0.0
                }
            } else {
                (-age / half_life_ms as f64).exp2()
            }
        })
        .collect()
}

/// `w_shaped` (three key roles) and `full_path` (four), in exact units: w_shaped 3 per key role
/// and 1 for the rest (0.3/0.1), full_path 9 per key role and 4 for the rest (0.225/0.1).
fn key_touch_weights(touches: &[TouchRef<'_>], conv: &Conversion, full: bool) -> Vec<f64> {
    let n = touches.len();
    let latest_at_or_before =
        |time: i64| -> Option<usize> { touches.iter().rposition(|t| t.at <= time) };
    let is_customer = conv.kind == ConversionKind::Customer;
    let first = Some(0);
    let lead = if is_customer {
        conv.lead_at.and_then(latest_at_or_before)
    } else {
        Some(n - 1)
    };
    let opportunity = if is_customer {
        conv.opportunity_at.and_then(latest_at_or_before)
    } else {
        None
    };
    let closing = if full && is_customer {
        Some(n - 1)
    } else {
        None
    };
    let (key_unit, rest_units) = if full { (9.0, 4.0) } else { (3.0, 1.0) };

    let mut weights = vec![0.0; n];
    let mut is_key = vec![false; n];
    for pos in [first, lead, opportunity, closing].into_iter().flatten() {
        if let (Some(w), Some(k)) = (weights.get_mut(pos), is_key.get_mut(pos)) {
            *w += key_unit;
            *k = true;
        }
    }
    let others = is_key.iter().filter(|k| !**k).count();
    let receivers = if others > 0 { others } else { n - others };
    let each = rest_units / receivers as f64;
    for (w, k) in weights.iter_mut().zip(&is_key) {
        if *k == (others == 0) {
            *w += each;
        }
    }
    weights
}

fn data_driven(touches: &[TouchRef<'_>], markov: Option<&MarkovModel>) -> Vec<f64> {
    let weights: Vec<f64> = touches
        .iter()
        .map(|t| markov.map_or(0.0, |m| m.removal_effect(t.channel)))
        .collect();
    if weights.iter().all(|w| *w <= 0.0) {
        return vec![1.0; touches.len()];
    }
    weights
}

/// `data_driven_global`'s shares: each touch gets its channel's global share per touch; linear
/// when none has one (no chain, or only channels without a converting touch).
fn data_driven_global(touches: &[TouchRef<'_>], markov: Option<&MarkovModel>) -> Vec<f64> {
    let shares: Vec<f64> = touches
        .iter()
        .map(|t| markov.map_or(0.0, |m| m.global_share(t.channel)))
        .collect();
    if shares.iter().all(|w| !(w.is_finite() && *w > 0.0)) {
        return vec![1.0 / touches.len().max(1) as f64; touches.len()];
    }
    shares
        .into_iter()
        .map(|w| if w.is_finite() && w > 0.0 { w } else { 0.0 })
        .collect()
}

/// A state of the Markov chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State<'a> {
    /// Where every journey begins.
    Start,
    /// A channel.
    Channel(&'a str),
    /// Absorbing: the journey converted.
    Conversion,
    /// Absorbing: the journey ended without converting.
    Null,
}

/// A first-order Markov chain over journeys of channels, with each channel's removal effect.
///
/// Every journey is `start → c1 → … → ck → conversion | null`. Consecutive repeats of one
/// channel are collapsed into one state visit: a self-loop does not change any absorption
/// probability (the other exits of the state keep their proportions), so the result is the same
/// as with self-loops, and the worked examples are shorter. Journeys with no channel are
/// skipped (they say nothing about any channel).
///
/// The conversion probability `P` is the probability of reaching `conversion` from `start`,
/// solved exactly as a linear system over the channel states. The removal effect of channel
/// `c` is `(P - P₋c) / P`, where `P₋c` is the same probability when every transition into `c`
/// goes to `null` instead. When `P = 0` (no journey converted) every removal effect is 0.
///
/// All removal effects come from one matrix inverse, `N = (I - Q)⁻¹` over the channel states
/// (`N[a][b]` = expected visits to `b` starting from `a`): with `x_c` the conversion probability
/// from `c` and `h_c = (Σ_d p(start→d) N[d][c]) / N[c][c]` the probability of ever visiting `c`,
/// the journeys that convert without `c` have probability `P₋c = P - h_c x_c` (the Markov
/// property: once in `c`, converting has probability `x_c`), so the removal effect is
/// `h_c x_c / P`. That costs O(k³) for k channels: nothing for the ~20 GA4 channel groups, and
/// still fine for a few hundred campaign keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarkovModel {
    channels: Vec<String>,
    /// Transition counts; row/column 0 = start, 1..=k = channels, k+1 = conversion, k+2 = null.
    counts: BTreeMap<(usize, usize), u64>,
    out_totals: Vec<u64>,
    conversion_probability: f64,
    removal: Vec<f64>,
    /// Per channel: its touches in the converting journeys (not collapsed).
    converting_touches: Vec<u64>,
    /// The converting journeys (with at least one channel).
    conversions: u64,
    /// Per channel: `data_driven_global`'s share per touch.
    global: Vec<f64>,
}

impl MarkovModel {
    /// Fits the chain over journeys: each is its channels in time order and whether it
    /// converted. Pass every journey of the site in the range, converting or not.
    ///
    /// ```
    /// use closeloop_core::attribution::MarkovModel;
    /// let journeys: Vec<(Vec<&str>, bool)> = vec![
    ///     (vec!["Paid Search"], true),
    ///     (vec!["Email"], false),
    /// ];
    /// let model = MarkovModel::fit(journeys.iter().map(|(c, conv)| (c.iter().copied(), *conv)));
    /// assert_eq!(model.conversion_probability(), 0.5);
    /// assert_eq!(model.removal_effect("Paid Search"), 1.0);
    /// assert_eq!(model.removal_effect("Email"), 0.0);
    /// ```
    pub fn fit<'a, I, J>(journeys: I) -> MarkovModel
    where
        I: IntoIterator<Item = (J, bool)>,
        J: IntoIterator<Item = &'a str>,
    {
        MarkovModel::fit_counted(
            journeys
                .into_iter()
                .map(|(channels, converted)| (channels, converted, 1)),
        )
    }

    /// [`MarkovModel::fit`] over journeys that each stand for `count` identical journeys
    /// (the same channels, converting or not): the chain is the one fitted over every
    /// journey one by one (transition counts are whole numbers, so it is exactly the same).
    ///
    /// ```
    /// use closeloop_core::attribution::MarkovModel;
    /// let one_by_one = MarkovModel::fit([(vec!["Email"], false), (vec!["Email"], false),
    ///     (vec!["Paid Search"], true)]);
    /// let counted = MarkovModel::fit_counted([(vec!["Email"], false, 2), (vec!["Paid Search"], true, 1)]);
    /// assert_eq!(one_by_one, counted);
    /// ```
    pub fn fit_counted<'a, I, J>(journeys: I) -> MarkovModel
    where
        I: IntoIterator<Item = (J, bool, u64)>,
        J: IntoIterator<Item = &'a str>,
    {
        MarkovModel::fit_with_steps(journeys, std::iter::empty())
    }

    /// [`MarkovModel::fit_counted`] plus non-converting journeys given by their steps
    /// instead of one by one: each step is a session of such a journey with the channel of
    /// the journey's previous session (`None` for its first session) and how many sessions
    /// made that step. The chain only depends on transition counts, and the steps hold them
    /// all: `start → c` for each journey's first session, `b → c` for consecutive sessions
    /// of different channels (repeats collapse, as in a journey), and `c → null` as often as
    /// `c` was entered minus left for another channel (the journeys' last states). So the
    /// steps of a set of journeys give the same chain as the journeys; a database can count
    /// them per (previous channel, channel) without building a journey.
    ///
    /// ```
    /// use closeloop_core::attribution::MarkovModel;
    /// // two anonymous journeys: Email → Direct, and Direct
    /// let journeys = MarkovModel::fit_counted([
    ///     (vec!["Email", "Direct"], false, 1),
    ///     (vec!["Direct"], false, 1),
    ///     (vec!["Paid Search", "Direct"], true, 1),
    /// ]);
    /// let steps = MarkovModel::fit_with_steps(
    ///     [(vec!["Paid Search", "Direct"], true, 1)],
    ///     [(None, "Email", 1), (Some("Email"), "Direct", 1), (None, "Direct", 1)],
    /// );
    /// assert_eq!(journeys, steps);
    /// ```
    pub fn fit_with_steps<'a, I, J, S>(journeys: I, steps: S) -> MarkovModel
    where
        I: IntoIterator<Item = (J, bool, u64)>,
        J: IntoIterator<Item = &'a str>,
        S: IntoIterator<Item = (Option<&'a str>, &'a str, u64)>,
    {
        let mut ids: BTreeMap<&'a str, usize> = BTreeMap::new();
        let mut names: Vec<&'a str> = Vec::new();
        let mut id_of = |c: &'a str| {
            *ids.entry(c).or_insert_with(|| {
                names.push(c);
                names.len() - 1
            })
        };
        let paths: Vec<(Vec<usize>, bool, u64)> = journeys
            .into_iter()
            .map(|(channels, converted, n)| {
                (channels.into_iter().map(&mut id_of).collect(), converted, n)
            })
            .collect();
        let steps: Vec<(Option<usize>, usize, u64)> = steps
            .into_iter()
            .map(|(prev, ch, n)| (prev.map(&mut id_of), id_of(ch), n))
            .collect();
        MarkovModel::fit_ids(
            &names,
            paths.iter().map(|(p, c, n)| (p.as_slice(), *c, *n)),
            steps,
        )
    }

    /// [`MarkovModel::fit_with_steps`] over channels given as indexes into `names` (so that
    /// a caller fitting several chains over the same journeys names each channel once). The
    /// chain holds the channels that its journeys and steps use, in name order; an index
    /// outside `names` is skipped.
    pub fn fit_ids<'p>(
        names: &[&str],
        journeys: impl IntoIterator<Item = (&'p [usize], bool, u64)>,
        steps: impl IntoIterator<Item = (Option<usize>, usize, u64)>,
    ) -> MarkovModel {
        // transition counts between raw states: 0 = start, 1 + id = a channel, then the
        // two absorbing states; renumbered below once the channels are known
        const CONV: usize = usize::MAX - 1;
        const NULL: usize = usize::MAX;
        let valid = |id: usize| id < names.len();
        let mut raw: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        let mut add = |from: usize, to: usize, n: u64| *raw.entry((from, to)).or_default() += n;
        // data_driven_global: touches per channel in the converting journeys, and how many
        let mut touches_by_id: BTreeMap<usize, u64> = BTreeMap::new();
        let mut conversions = 0u64;
        for (path, converted, n) in journeys {
            if n == 0 {
                continue;
            }
            let mut from = 0usize;
            for &id in path.iter().filter(|&&id| valid(id)) {
                if converted {
                    *touches_by_id.entry(id).or_default() += n;
                }
                if from != 1 + id {
                    add(from, 1 + id, n);
                    from = 1 + id;
                }
            }
            if converted && from != 0 {
                conversions = conversions.saturating_add(n);
            }
            // journeys with no channel say nothing about any channel
            if from != 0 {
                add(from, if converted { CONV } else { NULL }, n);
            }
        }
        // steps: entries and exits per channel; what is entered and not left for another
        // channel ends there (null)
        let mut entered: BTreeMap<usize, u64> = BTreeMap::new();
        let mut left: BTreeMap<usize, u64> = BTreeMap::new();
        for (prev, id, n) in steps {
            if n == 0 || prev == Some(id) || !valid(id) || prev.is_some_and(|p| !valid(p)) {
                continue;
            }
            let from = prev.map_or(0, |p| 1 + p);
            add(from, 1 + id, n);
            *entered.entry(1 + id).or_default() += n;
            *left.entry(from).or_default() += n;
        }
        for (&state, &n) in &entered {
            let ends = n.saturating_sub(left.get(&state).copied().unwrap_or(0));
            if ends > 0 {
                add(state, NULL, ends);
            }
        }
        // the channels used, in name order
        let mut used: Vec<usize> = raw
            .keys()
            .flat_map(|&(a, b)| [a, b])
            .filter(|&s| s != 0 && s != CONV && s != NULL)
            .map(|s| s - 1)
            .collect();
        used.sort_unstable();
        used.dedup();
        used.sort_by(|&a, &b| names.get(a).cmp(&names.get(b)));
        let k = used.len();
        let mut rank: BTreeMap<usize, usize> = BTreeMap::new();
        for (pos, &id) in used.iter().enumerate() {
            rank.insert(1 + id, 1 + pos);
        }
        let state = |s: usize| match s {
            0 => 0,
            CONV => k + 1,
            NULL => k + 2,
            s => rank.get(&s).copied().unwrap_or(0),
        };
        let mut counts: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        let mut out_totals = vec![0u64; k + 3];
        for ((from, to), n) in raw {
            let (from, to) = (state(from), state(to));
            *counts.entry((from, to)).or_default() += n;
            if let Some(t) = out_totals.get_mut(from) {
                *t += n;
            }
        }
        let channels: Vec<String> = used
            .iter()
            .filter_map(|&id| names.get(id).map(|c| (*c).to_owned()))
            .collect();
        let converting_touches: Vec<u64> = used
            .iter()
            .map(|id| touches_by_id.get(id).copied().unwrap_or(0))
            .collect();
        let mut model = MarkovModel {
            channels,
            counts,
            out_totals,
            conversion_probability: 0.0,
            removal: vec![0.0; k],
            converting_touches,
            conversions,
            global: vec![0.0; k],
        };
        model.solve();
        model
    }

    /// The channels seen, in name order.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(String::as_str)
    }

    /// The probability of reaching `conversion` from `start`.
    pub fn conversion_probability(&self) -> f64 {
        self.conversion_probability
    }

    /// The removal effect `(P - P₋c) / P` of a channel; 0 for a channel never seen.
    pub fn removal_effect(&self, channel: &str) -> f64 {
        self.channel_state(channel)
            .and_then(|s| self.removal.get(s - 1).copied())
            .unwrap_or(0.0)
    }

    /// Every channel's removal effect normalised to sum to 1 (all 0 when none converts), in
    /// channel name order.
    pub fn normalised_removal_effects(&self) -> Vec<(&str, f64)> {
        let sum: f64 = self.removal.iter().sum();
        self.channels
            .iter()
            .zip(&self.removal)
            .map(|(c, r)| (c.as_str(), if sum > 0.0 { r / sum } else { 0.0 }))
            .collect()
    }

    /// `data_driven_global`'s credit per touch of `channel`: the chain's converting journeys
    /// `C`, times the channel's removal effect over the sum of those of the channels with a
    /// touch in a converting journey, shared by the channel's `n` touches in those journeys:
    /// `C · RE(c) / Σ RE / n(c)`. 0 for a channel with no converting touch (or never seen).
    pub fn global_share(&self, channel: &str) -> f64 {
        self.channel_state(channel)
            .and_then(|s| self.global.get(s - 1).copied())
            .unwrap_or(0.0)
    }

    /// `data_driven_global`'s total per channel (`C · RE(c) / Σ RE` over the channels with a
    /// converting touch), in channel name order: what `ChannelAttribution` reports as
    /// `total_conversions`.
    pub fn global_totals(&self) -> Vec<(&str, f64)> {
        self.channels
            .iter()
            .zip(&self.global)
            .zip(&self.converting_touches)
            .map(|((c, share), n)| (c.as_str(), share * *n as f64))
            .collect()
    }

    /// The fitted probability of the transition `from → to` (0 when `from` was never left).
    pub fn transition_probability(&self, from: State<'_>, to: State<'_>) -> f64 {
        match (self.state_index(from), self.state_index(to)) {
            (Some(f), Some(t)) => self.probability(f, t),
            _ => 0.0,
        }
    }

    fn channel_state(&self, channel: &str) -> Option<usize> {
        self.channels
            .binary_search_by(|c| c.as_str().cmp(channel))
            .ok()
            .map(|i| i + 1)
    }

    fn state_index(&self, state: State<'_>) -> Option<usize> {
        let k = self.channels.len();
        match state {
            State::Start => Some(0),
            State::Channel(c) => self.channel_state(c),
            State::Conversion => Some(k + 1),
            State::Null => Some(k + 2),
        }
    }

    fn probability(&self, from: usize, to: usize) -> f64 {
        let total = self.out_totals.get(from).copied().unwrap_or(0);
        if total == 0 {
            return 0.0;
        }
        self.counts.get(&(from, to)).copied().unwrap_or(0) as f64 / total as f64
    }

    /// Fills `conversion_probability` and `removal` (see the type's docs for the method).
    fn solve(&mut self) {
        let k = self.channels.len();
        let conv = k + 1;
        // (I - Q) over the channel states 1..=k (matrix rows/columns 0..k)
        let mut a = vec![vec![0.0f64; k]; k];
        for (r, row) in a.iter_mut().enumerate() {
            for (c, cell) in row.iter_mut().enumerate() {
                let identity = if r == c { 1.0 } else { 0.0 };
                *cell = identity - self.probability(r + 1, c + 1);
            }
        }
        let n = invert(a);
        // x_c: conversion probability from channel c
        let x: Vec<f64> = n
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(d, v)| v * self.probability(d + 1, conv))
                    .sum()
            })
            .collect();
        let start: Vec<f64> = (0..k).map(|c| self.probability(0, c + 1)).collect();
        let p = self.probability(0, conv) + start.iter().zip(&x).map(|(s, xc)| s * xc).sum::<f64>();
        self.conversion_probability = p;
        if p <= 0.0 {
            return;
        }
        for c in 0..k {
            let visits: f64 = start
                .iter()
                .zip(&n)
                .map(|(s, row)| s * row.get(c).copied().unwrap_or(0.0))
                .sum();
            let self_visits = n.get(c).and_then(|row| row.get(c)).copied().unwrap_or(0.0);
            let xc = x.get(c).copied().unwrap_or(0.0);
            let effect = if self_visits > 0.0 {
                visits / self_visits * xc / p
            } else {
                0.0
            };
            if let Some(r) = self.removal.get_mut(c) {
                *r = effect.clamp(0.0, 1.0);
            }
        }
        // data_driven_global: C · RE(c) / Σ RE (channels with a converting touch) / n(c)
        let sum: f64 = self
            .removal
            .iter()
            .zip(&self.converting_touches)
            .filter(|(_, n)| **n > 0)
            .map(|(r, _)| r)
            .sum();
        if sum > 0.0 {
            let total = self.conversions as f64;
            for ((g, r), n) in self
                .global
                .iter_mut()
                .zip(&self.removal)
                .zip(&self.converting_touches)
            {
                if *n > 0 {
                    *g = total * r / sum / *n as f64;
                }
            }
        }
    }
}

/// Inverts a square matrix by Gauss-Jordan elimination with partial pivoting. The matrices here
/// (`I - Q` of a chain whose channel states all reach an absorbing state) are non-singular; a
/// vanishing pivot leaves its column as it is rather than dividing by zero.
fn invert(mut a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let k = a.len();
    let mut inv: Vec<Vec<f64>> = (0..k)
        .map(|r| (0..k).map(|c| if r == c { 1.0 } else { 0.0 }).collect())
        .collect();
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&r1, &r2| a[r1][col].abs().total_cmp(&a[r2][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        if p.abs() < 1e-300 {
            continue;
        }
        for c in 0..k {
            a[col][c] /= p;
            inv[col][c] /= p;
        }
        let (pivot_a, pivot_inv) = (a[col].clone(), inv[col].clone());
        for r in (0..k).filter(|&r| r != col) {
            let factor = a[r][col];
            if factor == 0.0 {
                continue;
            }
            for c in 0..k {
                a[r][c] -= factor * pivot_a[c];
                inv[r][c] -= factor * pivot_inv[c];
            }
        }
    }
    inv
}
