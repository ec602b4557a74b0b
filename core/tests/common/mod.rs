//! A small in-memory shard for one visitor: it keeps exactly what `resession`'s docs say a
//! shard keeps (events with their session id, session summaries) and reads exactly what
//! `plan` asks, `page` sessions at a time (so that `NeedMore` is exercised).

#![allow(dead_code)]

use std::collections::BTreeMap;

use closeloop_core::resession::{
    plan, resessionize, Changes, Plan, VisitEvent, VisitSession, Window,
};

impl<S> Default for Shard<S> {
    fn default() -> Self {
        Shard {
            events: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }
}

/// The shard's state for one visitor, and the reads `plan` asks for.
pub struct Shard<S> {
    pub events: BTreeMap<String, VisitEvent<S>>,
    /// by (start, id)
    pub sessions: BTreeMap<(i64, String), VisitSession<S>>,
}

impl<S: Clone + PartialEq> Shard<S> {
    pub fn ingest(
        &mut self,
        batch: &[VisitEvent<S>],
        page: usize,
        excluded: impl Fn(&str) -> bool + Copy,
    ) -> Changes<S> {
        let fresh: Vec<VisitEvent<S>> = batch
            .iter()
            .filter(|e| !self.events.contains_key(&e.id))
            .cloned()
            .collect();
        let latest = self.sessions.values().next_back().cloned();
        let mut window = match plan(latest.as_ref(), &fresh) {
            Plan::First => Window::Empty,
            Plan::Append => Window::Append(Box::new(latest.expect("a latest session"))),
            Plan::Recut { at, id } => {
                // the latest session that starts at or before (at, id), else the first
                let from = self
                    .sessions
                    .range(..=(at, id.clone()))
                    .next_back()
                    .or_else(|| self.sessions.iter().next())
                    .map(|(k, _)| k.clone())
                    .expect("some session");
                let w = self.read(Some(&from), true, page);
                assert!(w.holds(at, &id), "the window holds the earliest new event");
                w
            }
        };
        loop {
            match resessionize(&window, &fresh, excluded) {
                Ok(changes) => {
                    self.apply(&fresh, &changes);
                    return changes;
                }
                Err(more) => {
                    let Window::Recut {
                        sessions, events, ..
                    } = &mut window
                    else {
                        panic!("NeedMore outside a re-cut");
                    };
                    let next = self.read(Some(&(more.start, more.id)), false, page);
                    let Window::Recut {
                        sessions: s2,
                        events: e2,
                        complete,
                    } = next
                    else {
                        unreachable!()
                    };
                    assert!(!s2.is_empty(), "NeedMore only while sessions are left");
                    sessions.extend(s2);
                    events.extend(e2);
                    let Window::Recut { complete: c, .. } = &mut window else {
                        unreachable!()
                    };
                    *c = complete;
                }
            }
        }
    }

    /// Up to `page` sessions from `from` (inclusive) or after it, with all their events.
    fn read(&self, from: Option<&(i64, String)>, inclusive: bool, page: usize) -> Window<S> {
        let sessions: Vec<VisitSession<S>> = self
            .sessions
            .iter()
            .filter(|(k, _)| match from {
                Some(f) if inclusive => *k >= f,
                Some(f) => *k > f,
                None => true,
            })
            .take(page)
            .map(|(_, s)| s.clone())
            .collect();
        let complete = sessions.last().map(|s| (s.start, s.id.clone()))
            == self.sessions.keys().next_back().cloned();
        let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        let events = self
            .events
            .values()
            .filter(|e| e.session.as_deref().is_some_and(|s| ids.contains(&s)))
            .cloned()
            .collect();
        Window::Recut {
            sessions,
            events,
            complete,
        }
    }

    fn apply(&mut self, fresh: &[VisitEvent<S>], changes: &Changes<S>) {
        for e in fresh {
            self.events.insert(e.id.clone(), e.clone());
        }
        for c in &changes.sessions {
            if let Some(old) = &c.old {
                self.sessions.remove(&(old.start, old.id.clone()));
            }
        }
        for c in &changes.sessions {
            if let Some(new) = &c.new {
                self.sessions
                    .insert((new.start, new.id.clone()), new.clone());
            }
        }
        for (event, session) in &changes.assigned {
            if let Some(e) = self.events.get_mut(event) {
                e.session = Some(session.clone());
            }
        }
    }
}
