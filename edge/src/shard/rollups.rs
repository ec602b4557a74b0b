//! The shard's rollups in SQL: a batch's [`Rollup`] delta added to the hour tables (rows at
//! zero deleted), day summaries made again from the hours of a changed day, and the traffic
//! of a range answered from them with core's `rollup::answer`.

use super::engine::ShardEngine;
use super::msg::{BucketTraffic, TrafficAnswer, TrafficQuery};
use super::sql;
use crate::args;
use crate::engines::EngineError;
use crate::sqlite::{query_as, Sql};
use closeloop_core::rollup::answer::{page_traffic, traffic, Buckets, NotAligned};
use closeloop_core::rollup::visitors::VisitorSet;
use closeloop_core::rollup::{
    Bucket, DayRollup, PageFigures, Rollup, Row, RowKey, StepKey, DAY_MS, HOUR_MS,
};
use closeloop_core::time::Granularity;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Dirty days summarised per alarm run.
pub const SUMMARIES_PER_RUN: usize = 16;

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

fn unhex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// A step's previous session as stored (`''`, 0: none).
fn prev_cols(p: &Option<(String, i64)>) -> (String, i64) {
    p.clone().unwrap_or_default()
}

fn prev_of(channel: String, bucket: i64) -> Option<(String, i64)> {
    (!channel.is_empty()).then_some((channel, bucket))
}

fn not_aligned(e: NotAligned) -> EngineError {
    EngineError::invalid(format!("the range cannot be answered: {e}"))
}

impl<S: Sql> ShardEngine<S> {
    /// Adds a batch's rollup delta to the hour tables; the days it touches get a new
    /// summary later.
    pub(super) fn write_rollup_delta(&self, delta: &Rollup) -> Result<(), EngineError> {
        for (&hour, b) in &delta.hours {
            for (key, r) in &b.rows {
                let id = self.key_id(key)?;
                self.sql.execute(
                    sql::HOUR_ROW_ADD,
                    &args![hour, id, r.sessions, r.pageviews, r.new_visitors],
                )?;
                if r.sessions < 0 || r.pageviews < 0 || r.new_visitors < 0 {
                    self.sql.execute(sql::HOUR_ROW_PRUNE, &args![hour, id])?;
                }
                for (&v, &n) in &r.visitors {
                    self.sql
                        .execute(sql::HOUR_VISITOR_ADD, &args![hour, id, hex(v), n])?;
                    if n < 0 {
                        self.sql
                            .execute(sql::HOUR_VISITOR_PRUNE, &args![hour, id, hex(v)])?;
                    }
                }
            }
            for ((path, key), p) in &b.pages {
                let id = self.key_id(key)?;
                self.sql.execute(
                    sql::HOUR_PAGE_ADD,
                    &args![hour, path, id, p.views, p.entrances, p.exits],
                )?;
                if p.views < 0 || p.entrances < 0 || p.exits < 0 {
                    self.sql
                        .execute(sql::HOUR_PAGE_PRUNE, &args![hour, path, id])?;
                }
            }
            for (step, &n) in &b.steps {
                let (pc, ph) = prev_cols(&step.previous);
                self.sql.execute(
                    sql::HOUR_STEP_ADD,
                    &args![hour, step.with_bots, &pc, ph, &step.channel, n],
                )?;
                if n < 0 {
                    self.sql.execute(
                        sql::HOUR_STEP_PRUNE,
                        &args![hour, step.with_bots, &pc, ph, &step.channel],
                    )?;
                }
            }
            self.sql
                .execute(sql::DAY_DIRTY, &args![(hour * HOUR_MS).div_euclid(DAY_MS)])?;
        }
        Ok(())
    }

    /// The hour rollup of hours `[from, to)` (hours since the epoch).
    pub fn hours(&self, from: i64, to: i64) -> Result<Rollup, EngineError> {
        #[derive(Deserialize)]
        struct R {
            hour: i64,
            key_id: i64,
            sessions: i64,
            pageviews: i64,
            new_visitors: i64,
        }
        #[derive(Deserialize)]
        struct V {
            hour: i64,
            key_id: i64,
            visitor: String,
            sessions: i64,
        }
        #[derive(Deserialize)]
        struct P {
            hour: i64,
            path: String,
            key_id: i64,
            views: i64,
            entrances: i64,
            exits: i64,
        }
        #[derive(Deserialize)]
        struct St {
            hour: i64,
            with_bots: i64,
            prev_channel: String,
            prev_hour: i64,
            channel: String,
            n: i64,
        }
        let rows = query_as::<R, S>(&self.sql, sql::HOUR_ROWS_IN, &args![from, to])?;
        let visitors = query_as::<V, S>(&self.sql, sql::HOUR_VISITORS_IN, &args![from, to])?;
        let pages = query_as::<P, S>(&self.sql, sql::HOUR_PAGES_IN, &args![from, to])?;
        let steps = query_as::<St, S>(&self.sql, sql::HOUR_STEPS_IN, &args![from, to])?;
        let ids: BTreeSet<i64> = rows
            .iter()
            .map(|r| r.key_id)
            .chain(pages.iter().map(|p| p.key_id))
            .collect();
        let keys = self.keys_by_id(&ids)?;
        let key = |id: i64| -> Result<RowKey, EngineError> {
            keys.get(&id)
                .cloned()
                .ok_or_else(|| EngineError::Sql(crate::sqlite::SqlError::new("unknown row key")))
        };
        let mut out = Rollup::new();
        for r in rows {
            let b = out.hours.entry(r.hour).or_default();
            let row = b.rows.entry(key(r.key_id)?).or_default();
            row.sessions = r.sessions;
            row.pageviews = r.pageviews;
            row.new_visitors = r.new_visitors;
        }
        for v in visitors {
            let Some(hash) = unhex(&v.visitor) else {
                continue;
            };
            let b = out.hours.entry(v.hour).or_default();
            let row = b.rows.entry(key(v.key_id)?).or_default();
            row.visitors.insert(hash, v.sessions);
        }
        for p in pages {
            let b = out.hours.entry(p.hour).or_default();
            b.pages.insert(
                (p.path, key(p.key_id)?),
                PageFigures {
                    views: p.views,
                    entrances: p.entrances,
                    exits: p.exits,
                },
            );
        }
        for s in steps {
            let b = out.hours.entry(s.hour).or_default();
            b.steps.insert(
                StepKey {
                    with_bots: s.with_bots != 0,
                    previous: prev_of(s.prev_channel, s.prev_hour),
                    channel: s.channel,
                },
                s.n,
            );
        }
        Ok(out)
    }

    /// Summarises again up to `limit` dirty days in `[from, to)` (days since the epoch);
    /// returns how many.
    pub fn summarise_days(&self, from: i64, to: i64, limit: usize) -> Result<usize, EngineError> {
        #[derive(Deserialize)]
        struct D {
            day: i64,
        }
        let days = query_as::<D, S>(
            &self.sql,
            sql::DIRTY_DAYS_IN,
            &args![from, to, limit as i64],
        )?;
        for d in &days {
            self.atomically(|| self.summarise_day(d.day))?;
        }
        Ok(days.len())
    }

    fn summarise_day(&self, day: i64) -> Result<(), EngineError> {
        let hours = self.hours(day * 24, day * 24 + 24)?;
        let summary = hours.days();
        for q in [
            sql::DAY_ROWS_CLEAR,
            sql::DAY_PAGES_CLEAR,
            sql::DAY_STEPS_CLEAR,
        ] {
            self.sql.execute(q, &args![day])?;
        }
        if let Some(b) = summary.days.get(&day) {
            for (key, r) in &b.rows {
                let id = self.key_id(key)?;
                self.sql.execute(
                    sql::DAY_ROW_INSERT,
                    &args![
                        day,
                        id,
                        r.sessions,
                        r.pageviews,
                        r.new_visitors,
                        r.visitors.to_bytes()
                    ],
                )?;
            }
            for ((path, key), p) in &b.pages {
                let id = self.key_id(key)?;
                self.sql.execute(
                    sql::DAY_PAGE_INSERT,
                    &args![day, path, id, p.views, p.entrances, p.exits],
                )?;
            }
            for (step, &n) in &b.steps {
                let (pc, pd) = prev_cols(&step.previous);
                self.sql.execute(
                    sql::DAY_STEP_INSERT,
                    &args![day, step.with_bots, &pc, pd, &step.channel, n],
                )?;
            }
        }
        self.sql.execute(sql::DAY_CLEAN, &args![day])?;
        Ok(())
    }

    /// The day summaries of days `[from, to)`, every dirty day in it summarised first.
    pub fn days(&self, from: i64, to: i64) -> Result<DayRollup, EngineError> {
        while self.summarise_days(from, to, SUMMARIES_PER_RUN)? > 0 {}
        #[derive(Deserialize)]
        struct R {
            day: i64,
            key_id: i64,
            sessions: i64,
            pageviews: i64,
            new_visitors: i64,
            visitors: Vec<u8>,
        }
        #[derive(Deserialize)]
        struct P {
            day: i64,
            path: String,
            key_id: i64,
            views: i64,
            entrances: i64,
            exits: i64,
        }
        #[derive(Deserialize)]
        struct St {
            day: i64,
            with_bots: i64,
            prev_channel: String,
            prev_day: i64,
            channel: String,
            n: i64,
        }
        let rows = query_as::<R, S>(&self.sql, sql::DAY_ROWS_IN, &args![from, to])?;
        let pages = query_as::<P, S>(&self.sql, sql::DAY_PAGES_IN, &args![from, to])?;
        let steps = query_as::<St, S>(&self.sql, sql::DAY_STEPS_IN, &args![from, to])?;
        let ids: BTreeSet<i64> = rows
            .iter()
            .map(|r| r.key_id)
            .chain(pages.iter().map(|p| p.key_id))
            .collect();
        let keys = self.keys_by_id(&ids)?;
        let key = |id: i64| -> Result<RowKey, EngineError> {
            keys.get(&id)
                .cloned()
                .ok_or_else(|| EngineError::Sql(crate::sqlite::SqlError::new("unknown row key")))
        };
        let mut out = DayRollup::default();
        for r in rows {
            let visitors = VisitorSet::from_bytes(&r.visitors).ok_or_else(|| {
                EngineError::Sql(crate::sqlite::SqlError::new(
                    "a day's visitors do not read back",
                ))
            })?;
            let b: &mut Bucket<VisitorSet> = out.days.entry(r.day).or_default();
            b.rows.insert(
                key(r.key_id)?,
                Row {
                    sessions: r.sessions,
                    pageviews: r.pageviews,
                    new_visitors: r.new_visitors,
                    visitors,
                },
            );
        }
        for p in pages {
            let b = out.days.entry(p.day).or_default();
            b.pages.insert(
                (p.path, key(p.key_id)?),
                PageFigures {
                    views: p.views,
                    entrances: p.entrances,
                    exits: p.exits,
                },
            );
        }
        for s in steps {
            let b = out.days.entry(s.day).or_default();
            b.steps.insert(
                StepKey {
                    with_bots: s.with_bots != 0,
                    previous: prev_of(s.prev_channel, s.prev_day),
                    channel: s.channel,
                },
                s.n,
            );
        }
        Ok(out)
    }

    /// The traffic of a range (see [`TrafficQuery`]): from day summaries when the range is
    /// on whole days, else from hour rollups (then it must be on whole hours).
    pub fn traffic(&self, tq: &TrafficQuery) -> Result<TrafficAnswer, EngineError> {
        if tq.to < tq.from {
            return Err(EngineError::invalid("the range ends before it starts"));
        }
        let granularity = match tq.granularity.as_deref() {
            None => None,
            Some("day") => Some(Granularity::Day),
            Some("week") => Some(Granularity::Week),
            Some(other) => {
                return Err(EngineError::invalid(format!(
                    "granularity must be `day` or `week`, not `{other}`"
                )))
            }
        };
        if tq.from.rem_euclid(DAY_MS) == 0 && tq.to.rem_euclid(DAY_MS) == 0 {
            let days = self.days(tq.from / DAY_MS, tq.to / DAY_MS)?;
            answer_from(&days, tq, granularity, true)
        } else {
            if tq.from.rem_euclid(HOUR_MS) != 0 || tq.to.rem_euclid(HOUR_MS) != 0 {
                return Err(not_aligned(NotAligned { bucket_ms: HOUR_MS }));
            }
            let hours = self.hours(tq.from / HOUR_MS, tq.to / HOUR_MS)?;
            answer_from(&hours, tq, granularity, false)
        }
    }
}

fn answer_from<B: Buckets>(
    r: &B,
    tq: &TrafficQuery,
    granularity: Option<Granularity>,
    from_days: bool,
) -> Result<TrafficAnswer, EngineError> {
    let q = tq.query();
    let whole = traffic(r, &q).map_err(not_aligned)?;
    let pages = if tq.pages {
        Some(page_traffic(r, &q).map_err(not_aligned)?)
    } else {
        None
    };
    let mut buckets = Vec::new();
    if let Some(g) = granularity {
        for start in g.bucket_starts(q.from, q.to, tq.max_buckets.max(1)) {
            let from = start.max(q.from);
            let to = start.saturating_add(g.len_ms()).min(q.to);
            let mut bq = q.clone();
            bq.from = from;
            bq.to = to;
            buckets.push(BucketTraffic {
                from,
                to,
                traffic: traffic(r, &bq).map_err(not_aligned)?,
            });
        }
    }
    Ok(TrafficAnswer {
        traffic: whole,
        pages,
        buckets,
        from_days,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_travel_as_hex_and_back() {
        for v in [0u64, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(super::unhex(&super::hex(v)), Some(v));
        }
    }

    #[test]
    fn no_previous_session_is_stored_as_an_empty_channel() {
        assert_eq!(super::prev_cols(&None), (String::new(), 0));
        assert_eq!(super::prev_of(String::new(), 0), None);
        assert_eq!(
            super::prev_of("Email".into(), 7),
            Some(("Email".to_string(), 7))
        );
    }
}
