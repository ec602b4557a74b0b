//! Sessions at ingest, incrementally: the per-visitor state machine that issue 14's shards run
//! on every batch, proven equal to [`crate::session::sessionize`] over all of a visitor's events
//! (`core/tests/resession.rs`, a proptest over every interleaving, chunking and order of
//! batches).
//!
//! # What the shard keeps per visitor
//!
//! - its **events** ([`VisitEvent`]): id, time (`derived_ts`), path, arrival (decided once at
//!   ingest by [`crate::arrival::arrival`]), page view or not, the bot flag, country and device
//!   of the request, and the id of the session it is in;
//! - its **sessions** ([`VisitSession`]): a summary with everything the rollups and the next
//!   batch need — first and last event, touch, landing path, counts, entrance and exit page
//!   views, and two **markers**: the visitor's previous session and its previous non-bot
//!   session (start, id and touch), which give `data_driven`'s journey steps.
//!
//! Nothing else: no queue, no flush. The sessions of a visitor are a function of its events
//! ([`crate::session`]'s rules), and this module keeps them so after every batch.
//!
//! # What the shard reads per batch (bounded)
//!
//! 1. the visitor's **latest session** (one row by an index on (visitor, start));
//! 2. [`plan`] says what else:
//!    - [`Plan::First`]: the visitor has nothing stored: nothing more;
//!    - [`Plan::Append`]: every new event comes after the visitor's latest stored event (the
//!      tracker's normal case): nothing more, the latest session's summary is the whole state
//!      ([`Window::Append`]). O(1) reads however long the session is;
//!    - [`Plan::Recut`]: some event is late. The shard reads the session holding the earliest
//!      new event (the latest session that starts at or before it; the visitor's first
//!      session when none does) and the sessions after it, a page at a time, with all their
//!      events ([`Window::Recut`]). [`resessionize`] answers [`NeedMore`] while the sessions
//!      read do not reach the re-cut's end; the shard reads the next page and asks again.
//!
//! The re-cut's end: sessions are re-cut from the session holding the earliest new event
//! ("late events re-cut the visitor's sessions from that point") up to the first stored
//! session that starts after the latest new event **and** more than 30 minutes after the
//! event before it (old or new). That session starts a session in the new cut too (a timeout
//! does not depend on sources), and everything from there on is as before. So a late event
//! costs the visitor's activity from the session it falls in to the next half hour of
//! silence after it, never its whole history. Sessions after the re-cut only change their
//! markers when the re-cut's last session (or last non-bot session) changed: then the next
//! session (and the next non-bot one) is read too.
//!
//! # What comes out ([`Changes`])
//!
//! Per session touched, its stored summary before and after ([`SessionChange`]; `None`: new,
//! or deleted) and the page views that left or joined it, which is exactly what the rollups
//! subtract and add (`crate::rollup`); the events whose session changed; and the touch the
//! acknowledgement tells the tracker (the touch of the batch's last session when that session
//! starts inside the batch), now exact, as the shard knows the current session's touch.
//!
//! Events are expected unique by id (the shard deduplicates first); a new event whose id is
//! already stored is ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::session::{sessionize_with_timeout, Arrival, Cursor, SessionEvent, SESSION_TIMEOUT_MS};

/// One event of a visitor, as the shard stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitEvent<S> {
    /// The event id (unique per site).
    pub id: String,
    /// Its time (`derived_ts`, ms).
    pub at: i64,
    /// Its page path.
    pub path: String,
    /// How the visitor got to it ([`crate::arrival::arrival`]).
    pub arrival: Arrival<S>,
    /// Whether it is a page view.
    pub pageview: bool,
    /// Whether its request was a bot's.
    pub is_bot: bool,
    /// Its request's country.
    pub country: Option<String>,
    /// Its request's device type.
    pub device: Option<String>,
    /// The session it is in (`None` for a new event).
    pub session: Option<String>,
}

impl<S> VisitEvent<S> {
    fn key(&self) -> (i64, &str) {
        (self.at, &self.id)
    }
}

/// A page view of a session: its event id, time and path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PageRef {
    /// The event id.
    pub id: String,
    /// Its time (ms).
    pub at: i64,
    /// The page path.
    pub path: String,
}

/// A reference to another session of the visitor (a marker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker<S> {
    /// Its start (ms).
    pub start: i64,
    /// Its id.
    pub id: String,
    /// Its touch (`None`: direct).
    pub touch: Option<S>,
}

/// One session as the shard stores it: the summary the rollups and the next batch need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitSession<S> {
    /// `s_` + the id of its first event.
    pub id: String,
    /// Its first event's time.
    pub start: i64,
    /// Its first event's id.
    pub first_event: String,
    /// Its last event's time.
    pub end: i64,
    /// Its last event's id.
    pub last_event: String,
    /// Its touch (`None`: direct).
    pub touch: Option<S>,
    /// Its first event's path.
    pub landing_path: String,
    /// Its events.
    pub events: u64,
    /// Its page views.
    pub pageviews: u64,
    /// Its first event's bot flag (a session is a bot's when its first request was).
    pub is_bot: bool,
    /// Its first event's country.
    pub country: Option<String>,
    /// Its first event's device type.
    pub device: Option<String>,
    /// Its first page view (the entrance), if any.
    pub entrance: Option<PageRef>,
    /// Its last page view (the exit), if any.
    pub exit: Option<PageRef>,
    /// The visitor's previous session, bot or not.
    pub prev_any: Option<Marker<S>>,
    /// The visitor's previous non-bot session.
    pub prev_human: Option<Marker<S>>,
}

impl<S: Clone> VisitSession<S> {
    /// This session as a marker.
    pub fn marker(&self) -> Marker<S> {
        Marker {
            start: self.start,
            id: self.id.clone(),
            touch: self.touch.clone(),
        }
    }

    /// The marker a next session gets as its previous non-bot session.
    fn human_marker(&self) -> Option<Marker<S>> {
        if self.is_bot {
            self.prev_human.clone()
        } else {
            Some(self.marker())
        }
    }

    /// A session made of `event` alone.
    fn open(event: &VisitEvent<S>, touch: Option<S>, prev: &Prev<S>) -> VisitSession<S> {
        let mut s = VisitSession {
            id: format!("s_{}", event.id),
            start: event.at,
            first_event: event.id.clone(),
            end: event.at,
            last_event: event.id.clone(),
            touch,
            landing_path: event.path.clone(),
            events: 0,
            pageviews: 0,
            is_bot: event.is_bot,
            country: event.country.clone(),
            device: event.device.clone(),
            entrance: None,
            exit: None,
            prev_any: prev.any.clone(),
            prev_human: prev.human.clone(),
        };
        s.push(event);
        s
    }

    /// Adds an event after the session's last one.
    fn push(&mut self, event: &VisitEvent<S>) {
        self.end = event.at;
        self.last_event = event.id.clone();
        self.events += 1;
        if event.pageview {
            self.pageviews += 1;
            let page = PageRef {
                id: event.id.clone(),
                at: event.at,
                path: event.path.clone(),
            };
            if self.entrance.is_none() {
                self.entrance = Some(page.clone());
            }
            self.exit = Some(page);
        }
    }
}

impl<S> VisitSession<S> {
    fn last_key(&self) -> (i64, &str) {
        (self.end, &self.last_event)
    }

    fn first_key(&self) -> (i64, &str) {
        (self.start, &self.first_event)
    }
}

/// The previous sessions a new session points back to.
#[derive(Debug, Clone)]
struct Prev<S> {
    any: Option<Marker<S>>,
    human: Option<Marker<S>>,
}

impl<S: Clone> Prev<S> {
    fn after(s: &VisitSession<S>) -> Prev<S> {
        Prev {
            any: Some(s.marker()),
            human: s.human_marker(),
        }
    }
}

/// What the shard must read besides the visitor's latest session ([`plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is stored for the visitor: [`Window::Empty`].
    First,
    /// Every new event comes after the latest stored one: [`Window::Append`] with the latest
    /// session.
    Append,
    /// Some new event is late: [`Window::Recut`] from the session holding `(at, id)` (the
    /// latest session whose first event is at or before it; the visitor's first session when
    /// none is).
    Recut {
        /// The earliest new event's time.
        at: i64,
        /// Its id.
        id: String,
    },
}

/// What the shard read for a batch (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window<S> {
    /// The visitor has no stored session.
    Empty,
    /// Every new event comes after the visitor's latest stored event: its latest session.
    Append(Box<VisitSession<S>>),
    /// The stored sessions from the one holding the earliest new event on (in order of
    /// start, then id), with every event of those sessions, and whether they reach the
    /// visitor's latest session.
    Recut {
        /// The sessions read, in order.
        sessions: Vec<VisitSession<S>>,
        /// All the events of those sessions (any order).
        events: Vec<VisitEvent<S>>,
        /// Whether the last session read is the visitor's latest.
        complete: bool,
    },
}

/// The shard must read more sessions (and their events) after this one before asking again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedMore {
    /// The start of the last session read.
    pub start: i64,
    /// Its id.
    pub id: String,
}

/// One session touched by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChange<S> {
    /// As stored before (`None`: a new session).
    pub old: Option<VisitSession<S>>,
    /// As it must be stored now (`None`: delete it).
    pub new: Option<VisitSession<S>>,
    /// Stored page views that left it.
    pub views_out: Vec<PageRef>,
    /// Page views that joined it (new events, or stored ones from another session).
    pub views_in: Vec<PageRef>,
}

/// The touch the acknowledgement tells the tracker: the batch's last session starts inside the
/// batch, with this touch (`None`: direct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told<S> {
    /// The touch (`None`: direct).
    pub touch: Option<S>,
}

/// What a batch changes for one visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes<S> {
    /// The sessions touched, in order of their (new, else old) start.
    pub sessions: Vec<SessionChange<S>>,
    /// `(event id, session id)` for every event whose session changed (every new event).
    pub assigned: Vec<(String, String)>,
    /// What the acknowledgement tells the tracker, if anything.
    pub told: Option<Told<S>>,
}

/// What the shard must read for `new` events given the visitor's `latest` stored session.
pub fn plan<S>(latest: Option<&VisitSession<S>>, new: &[VisitEvent<S>]) -> Plan {
    let Some(latest) = latest else {
        return Plan::First;
    };
    let last = (latest.end, latest.last_event.as_str());
    match new.iter().map(VisitEvent::key).min() {
        Some(min) if min <= last => Plan::Recut {
            at: min.0,
            id: min.1.to_owned(),
        },
        _ => Plan::Append,
    }
}

/// Applies a batch of `new` events to what the shard read (`window`, as [`plan`] asked),
/// with the default 30-minute timeout. `is_excluded(host)` as for
/// [`crate::session::sessionize`]. See the [module docs](self).
pub fn resessionize<S, F>(
    window: &Window<S>,
    new: &[VisitEvent<S>],
    is_excluded: F,
) -> Result<Changes<S>, NeedMore>
where
    S: Clone + PartialEq,
    F: Fn(&str) -> bool,
{
    resessionize_with_timeout(window, new, SESSION_TIMEOUT_MS, is_excluded)
}

/// [`resessionize`] with another inactivity timeout (ms).
pub fn resessionize_with_timeout<S, F>(
    window: &Window<S>,
    new: &[VisitEvent<S>],
    timeout_ms: i64,
    is_excluded: F,
) -> Result<Changes<S>, NeedMore>
where
    S: Clone + PartialEq,
    F: Fn(&str) -> bool,
{
    let mut batch: Vec<&VisitEvent<S>> = new.iter().collect();
    batch.sort_by(|a, b| a.key().cmp(&b.key()));
    batch.dedup_by(|a, b| a.id == b.id);
    match window {
        Window::Empty => Ok(append(None, &batch, timeout_ms, &is_excluded)),
        Window::Append(latest) => {
            let last = latest.last_key();
            // an event that is not after the latest one belongs to a re-cut
            if batch.iter().any(|e| e.key() <= last) {
                return Err(NeedMore {
                    start: latest.start,
                    id: latest.id.clone(),
                });
            }
            Ok(append(
                Some(latest.as_ref()),
                &batch,
                timeout_ms,
                &is_excluded,
            ))
        }
        Window::Recut {
            sessions,
            events,
            complete,
        } => recut(
            sessions,
            events,
            *complete,
            &batch,
            timeout_ms,
            &is_excluded,
        ),
    }
}

/// The append path: the cursor is the latest session's end and touch.
fn append<S, F>(
    latest: Option<&VisitSession<S>>,
    batch: &[&VisitEvent<S>],
    timeout_ms: i64,
    is_excluded: &F,
) -> Changes<S>
where
    S: Clone + PartialEq,
    F: Fn(&str) -> bool,
{
    let mut current: Option<VisitSession<S>> = latest.cloned();
    let mut done: Vec<SessionChange<S>> = Vec::new();
    let mut views_in: Vec<PageRef> = Vec::new();
    let mut assigned = Vec::new();
    let mut started_in_batch = false;
    for e in batch {
        let source = e.arrival.source(is_excluded);
        let starts = current.as_ref().is_none_or(|c| {
            Cursor {
                last_at: c.end,
                touch: c.touch.clone(),
            }
            .starts_session(e.at, source, timeout_ms)
        });
        if starts {
            let prev = match current.take() {
                Some(c) => {
                    let prev = Prev::after(&c);
                    let old = if done.is_empty() {
                        latest.cloned()
                    } else {
                        None
                    };
                    done.push(SessionChange {
                        old,
                        new: Some(c),
                        views_out: Vec::new(),
                        views_in: std::mem::take(&mut views_in),
                    });
                    prev
                }
                None => Prev {
                    any: None,
                    human: None,
                },
            };
            current = Some(VisitSession::open(e, source.cloned(), &prev));
            started_in_batch = true;
        } else if let Some(c) = current.as_mut() {
            c.push(e);
        }
        if e.pageview {
            views_in.push(page_of(e));
        }
        if let Some(c) = &current {
            assigned.push((e.id.clone(), c.id.clone()));
        }
    }
    let told = started_in_batch.then(|| Told {
        touch: current.as_ref().and_then(|c| c.touch.clone()),
    });
    if let Some(c) = current {
        let old = if done.is_empty() {
            latest.cloned()
        } else {
            None
        };
        done.push(SessionChange {
            old,
            new: Some(c),
            views_out: Vec::new(),
            views_in,
        });
    }
    done.retain(|c| c.old != c.new || !c.views_in.is_empty());
    Changes {
        sessions: done,
        assigned,
        told,
    }
}

fn page_of<S>(e: &VisitEvent<S>) -> PageRef {
    PageRef {
        id: e.id.clone(),
        at: e.at,
        path: e.path.clone(),
    }
}

/// The re-cut path (see the module docs for the region and why it is exact).
fn recut<S, F>(
    sessions: &[VisitSession<S>],
    stored: &[VisitEvent<S>],
    complete: bool,
    batch: &[&VisitEvent<S>],
    timeout_ms: i64,
    is_excluded: &F,
) -> Result<Changes<S>, NeedMore>
where
    S: Clone + PartialEq,
    F: Fn(&str) -> bool,
{
    let known: BTreeSet<&str> = stored.iter().map(|e| e.id.as_str()).collect();
    let batch: Vec<&VisitEvent<S>> = batch
        .iter()
        .copied()
        .filter(|e| !known.contains(e.id.as_str()))
        .collect();
    let need_more = || {
        sessions.last().map_or(
            NeedMore {
                start: i64::MIN,
                id: String::new(),
            },
            |s| NeedMore {
                start: s.start,
                id: s.id.clone(),
            },
        )
    };
    let Some(last_new) = batch.last() else {
        return Ok(Changes {
            sessions: Vec::new(),
            assigned: Vec::new(),
            told: None,
        });
    };
    let t_max = last_new.at;
    // the region: sessions[..end], up to the first session that starts after the latest new
    // event and more than the timeout after the event before it
    let mut end = None;
    for (i, s) in sessions.iter().enumerate().skip(1) {
        let before = sessions.get(i - 1).map_or(i64::MIN, |p| p.end).max(t_max);
        if s.start > t_max && s.start.saturating_sub(before) > timeout_ms {
            end = Some(i);
            break;
        }
    }
    let end = match end {
        Some(i) => i,
        None if complete => sessions.len(),
        None => return Err(need_more()),
    };
    let region = sessions.get(..end).unwrap_or_default();
    let region_ids: BTreeSet<&str> = region.iter().map(|s| s.id.as_str()).collect();
    // the region's events: the stored ones of its sessions, and the batch
    let mut events: Vec<&VisitEvent<S>> = stored
        .iter()
        .filter(|e| e.session.as_deref().is_some_and(|s| region_ids.contains(s)))
        .chain(batch.iter().copied())
        .collect();
    events.sort_by(|a, b| a.key().cmp(&b.key()));
    let input: Vec<SessionEvent<S>> = events
        .iter()
        .map(|e| SessionEvent {
            id: e.id.clone(),
            at: e.at,
            path: e.path.clone(),
            arrival: e.arrival.clone(),
        })
        .collect();
    let cut = sessionize_with_timeout(&input, timeout_ms, is_excluded);
    // the new sessions, marked from the region's first session's own markers (the sessions
    // before it do not change)
    let mut prev = Prev {
        any: region.first().and_then(|s| s.prev_any.clone()),
        human: region.first().and_then(|s| s.prev_human.clone()),
    };
    let mut rebuilt: Vec<VisitSession<S>> = Vec::new();
    let mut session_of: BTreeMap<&str, String> = BTreeMap::new();
    for s in &cut {
        let mut members = s.events.iter().filter_map(|&i| events.get(i).copied());
        let Some(first) = members.next() else {
            continue;
        };
        let mut v = VisitSession::open(first, s.touch.clone(), &prev);
        session_of.insert(&first.id, v.id.clone());
        for e in members {
            v.push(e);
            session_of.insert(&e.id, v.id.clone());
        }
        prev = Prev::after(&v);
        rebuilt.push(v);
    }
    // sessions after the region whose markers point into it
    let old_any = region.last().map(VisitSession::marker);
    let old_human = region.last().and_then(VisitSession::human_marker);
    let mut remarked: Vec<(VisitSession<S>, VisitSession<S>)> = Vec::new();
    if prev.any != old_any {
        match sessions.get(end) {
            Some(next) => {
                let mut n = next.clone();
                n.prev_any = prev.any.clone();
                remarked.push((next.clone(), n));
            }
            None if !complete => return Err(need_more()),
            None => {}
        }
    }
    if prev.human != old_human {
        // every session up to the next non-bot one carries the previous non-bot session
        let after = sessions.get(end..).unwrap_or_default();
        let reach = match after.iter().position(|s| !s.is_bot) {
            Some(i) => i + 1,
            None if !complete => return Err(need_more()),
            None => after.len(),
        };
        for next in after.iter().take(reach) {
            let mut n = remarked
                .iter()
                .find(|(o, _)| o.id == next.id)
                .map_or_else(|| next.clone(), |(_, n)| n.clone());
            n.prev_human = prev.human.clone();
            remarked.retain(|(o, _)| o.id != next.id);
            remarked.push((next.clone(), n));
        }
    }
    // the diff, session by session
    let old_by_id: BTreeMap<&str, &VisitSession<S>> =
        region.iter().map(|s| (s.id.as_str(), s)).collect();
    let new_ids: BTreeSet<&str> = rebuilt.iter().map(|s| s.id.as_str()).collect();
    let mut changes: BTreeMap<String, SessionChange<S>> = BTreeMap::new();
    fn change<'m, S: Clone>(
        changes: &'m mut BTreeMap<String, SessionChange<S>>,
        old_by_id: &BTreeMap<&str, &VisitSession<S>>,
        id: &str,
    ) -> &'m mut SessionChange<S> {
        changes
            .entry(id.to_owned())
            .or_insert_with(|| SessionChange {
                old: old_by_id.get(id).map(|s| (*s).clone()),
                new: None,
                views_out: Vec::new(),
                views_in: Vec::new(),
            })
    }
    for s in &rebuilt {
        change(&mut changes, &old_by_id, &s.id).new = Some(s.clone());
    }
    for s in region.iter().filter(|s| !new_ids.contains(s.id.as_str())) {
        change(&mut changes, &old_by_id, &s.id);
    }
    let mut assigned = Vec::new();
    for e in &events {
        let now = session_of.get(e.id.as_str());
        if e.session.as_ref() == now {
            continue;
        }
        if let Some(now) = now {
            assigned.push((e.id.clone(), now.clone()));
        }
        if e.pageview {
            if let Some(was) = e.session.as_deref() {
                change(&mut changes, &old_by_id, was)
                    .views_out
                    .push(page_of(e));
            }
            if let Some(now) = now {
                change(&mut changes, &old_by_id, now)
                    .views_in
                    .push(page_of(e));
            }
        }
    }
    let mut out: Vec<SessionChange<S>> = changes
        .into_values()
        .filter(|c| c.old != c.new || !c.views_in.is_empty() || !c.views_out.is_empty())
        .collect();
    out.extend(remarked.into_iter().map(|(old, new)| SessionChange {
        old: Some(old),
        new: Some(new),
        views_out: Vec::new(),
        views_in: Vec::new(),
    }));
    let order = |c: &SessionChange<S>| {
        c.new
            .as_ref()
            .or(c.old.as_ref())
            .map(|s| (s.start, s.id.clone()))
    };
    out.sort_by_key(order);
    // the acknowledgement: the visitor's latest session, if the batch started it
    let tail = complete && end == sessions.len();
    let told = rebuilt
        .last()
        .filter(|s| tail && batch.iter().any(|e| e.id == s.first_event))
        .map(|s| Told {
            touch: s.touch.clone(),
        });
    Ok(Changes {
        sessions: out,
        assigned,
        told,
    })
}

impl<S> Window<S> {
    /// Whether the sessions read hold the earliest new event as [`plan`] asked (the first
    /// session read starts at or before it, or is the visitor's first session).
    pub fn holds(&self, at: i64, id: &str) -> bool {
        match self {
            Window::Recut { sessions, .. } => sessions
                .first()
                .is_some_and(|s| s.first_key() <= (at, id) || s.prev_any.is_none()),
            Window::Empty | Window::Append(_) => true,
        }
    }
}
