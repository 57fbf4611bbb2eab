//! Product events and journeys on both databases: the unit of work that stitching
//! (`handoff_core::observe::stitch`) runs in (insert the events, `RETURNING` which were new;
//! read the journeys' rows locked — on PostgreSQL an upsert that creates the missing ones and
//! locks them all, in id order; write the rows back with one multi-row upsert), finishing
//! idle journeys with a compare-and-set on `state = 'open'`, and the operators' reads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use crate::rollups::mark_dirty;
use crate::sql::{Param, Row, Sql, Tx};
use crate::{Backend, Database};
use async_trait::async_trait;
use handoff_core::clock::Millis;
use handoff_core::domain::JourneyId;
use handoff_core::error::Result;
use handoff_core::observe::stitch::{Rewrite, StitchUnit, hour_of};
use handoff_core::observe::{JourneyColumns, JourneyFacts};
use handoff_core::storage::{
    FunnelCounts, FunnelQuery, JourneyQuery, JourneyRecord, Journeys, Segment, SegmentedOutcome, StoredEvent,
};

/// Rows per multi-row statement (events have 12 columns, journeys 20: well under both
/// backends' parameter limits).
const CHUNK: usize = 400;

/// `($1, $2), ($3, $4)` on PostgreSQL; `(?, ?), (?, ?)` on SQLite, where binding numbered
/// parameters looks each name up in a list (quadratic in the parameter count: with
/// thousands of parameters that cost more than the insert itself).
fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=columns)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", r * columns + c),
                })
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many rows a statement for `n` rows is written for. Statements are prepared once and
/// cached by their text, and a group commit can hold any number of rows; rounding the
/// count up (by repeating the last row, which changes nothing: a repeated event is ignored,
/// a repeated journey row is written twice with the same values) keeps the number of
/// distinct texts small enough for the cache (about 25 sizes up to 400 rows), at most a
/// quarter more rows.
fn ladder(n: usize) -> usize {
    if n <= 8 {
        return n;
    }
    // Steps of a quarter of the power of two below `n` (at least 8).
    let step = (1usize << (usize::BITS - 1 - n.leading_zeros())).div_ceil(4).max(8);
    n.div_ceil(step) * step
}

/// `items` followed by its last item until there are `ladder(items.len())`.
fn padded<T>(items: &[T]) -> impl Iterator<Item = &T> {
    let extra = ladder(items.len()) - items.len();
    items.iter().chain(items.last().into_iter().cycle().take(extra))
}

const JOURNEY_COLUMNS: &str = "journey_id, flow, identifier, state, outcome, root_cause, basis, started_at, \
                               last_at, finished_at, steps, convert_ms, desktop_os, desktop_browser, desktop_form, \
                               mobile_os, mobile_browser, app_version, client, facts";

async fn insert_events(tx: &mut Tx, events: &[StoredEvent]) -> Result<Vec<(JourneyId, String)>> {
    let sql = format!(
        "INSERT INTO events (event_id, journey_id, name, device, flow, ts, received_at, attrs, os, browser, \
         form_factor, app_version) VALUES {} ON CONFLICT (journey_id, event_id) DO NOTHING RETURNING journey_id, event_id",
        placeholders(tx.backend(), ladder(events.len()), 12)
    );
    let mut params = Vec::with_capacity(ladder(events.len()) * 12);
    for e in padded(events) {
        params.extend([
            e.event_id.clone().into(),
            e.journey_id.to_string().into(),
            e.name.clone().into(),
            e.device.clone().into(),
            e.flow.clone().into(),
            e.ts.into(),
            e.received_at.into(),
            e.attrs.clone().into(),
            e.os.clone().into(),
            e.browser.clone().into(),
            e.form_factor.clone().into(),
            e.app_version.clone().into(),
        ]);
    }
    tx.all(&Sql::verbatim(sql), &params, |row| Ok((JourneyId::parse(&row.text(0)?)?, row.text(1)?))).await
}

fn parse_facts(raw: &str) -> JourneyFacts {
    serde_json::from_str(raw).unwrap_or_else(|e| {
        tracing::error!(error = %e, "unreadable journey facts; starting them afresh");
        JourneyFacts::default()
    })
}

fn record_of(row: &dyn Row) -> Result<JourneyRecord> {
    Ok(JourneyRecord {
        journey_id: JourneyId::parse(&row.text(0)?)?,
        facts: parse_facts(&row.text(1)?),
        finished_at: row.opt_int(2)?,
    })
}

/// Reads the rows of these journeys for folding, so no other writer can change them before
/// this transaction writes them back: on PostgreSQL an upsert creates missing rows and locks
/// all of them, in id order, so two instances folding the same journeys cannot deadlock; on
/// SQLite this transaction already holds the database's only write lock (its first statement
/// wrote), so a plain read is enough and missing rows start from empty facts.
async fn lock_journeys(tx: &mut Tx, ids: &[JourneyId], now: Millis) -> Result<Vec<JourneyRecord>> {
    let backend = tx.backend();
    let mut found = match backend {
        Backend::Postgres => {
            // One statement, in id order, both creates the missing rows (empty facts) and
            // locks every row. Locking the existing rows first and inserting the new ones
            // after (two sweeps) deadlocked in CI: a writer holding a fresh insert waited
            // for a lock held by a writer whose own insert waited for the first one.
            let sql = format!(
                "INSERT INTO journeys (journey_id, started_at, last_at, facts) VALUES {} \
                 ON CONFLICT (journey_id) DO UPDATE SET journey_id = excluded.journey_id \
                 RETURNING journey_id, facts, finished_at",
                placeholders(backend, ids.len(), 4)
            );
            let params: Vec<Param> =
                ids.iter().flat_map(|id| [id.to_string().into(), now.into(), now.into(), "{}".into()]).collect();
            tx.all(&Sql::verbatim(sql), &params, record_of).await?
        }
        Backend::Sqlite => {
            let marks = vec!["?"; ladder(ids.len())].join(", ");
            let sql = format!("SELECT journey_id, facts, finished_at FROM journeys WHERE journey_id IN ({marks})");
            let params: Vec<Param> = padded(ids).map(|id| id.to_string().into()).collect();
            tx.all(&Sql::verbatim(sql), &params, record_of).await?
        }
    };
    if found.len() < ids.len() {
        let known: HashSet<JourneyId> = found.iter().map(|j| j.journey_id).collect();
        found.extend(ids.iter().filter(|id| !known.contains(id)).map(|&journey_id| JourneyRecord {
            journey_id,
            facts: JourneyFacts::default(),
            finished_at: None,
        }));
    }
    Ok(found)
}

/// Writes journey rows with one multi-row upsert. SQLite rewrites an index entry whenever a
/// column of the index is in the `SET` list, changed or not: with [`Rewrite::KeepKeys`] the
/// second write of a sign-in's journey skips `journeys_by_identifier` (a random page per
/// journey) and `journeys_by_start`.
async fn write_journeys(tx: &mut Tx, rows: &[JourneyColumns], rewrite: Rewrite) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = tx.backend();
    let statement_rows = match backend {
        Backend::Sqlite => ladder(rows.len()),
        Backend::Postgres => rows.len(),
    };
    let keys = match rewrite {
        Rewrite::All => "identifier = excluded.identifier, started_at = excluded.started_at, ",
        Rewrite::KeepKeys => "",
    };
    let sql = format!(
        "INSERT INTO journeys ({JOURNEY_COLUMNS}) VALUES {} ON CONFLICT (journey_id) DO UPDATE SET \
         flow = excluded.flow, {keys}state = excluded.state, \
         outcome = excluded.outcome, root_cause = excluded.root_cause, basis = excluded.basis, \
         last_at = excluded.last_at, finished_at = excluded.finished_at, \
         steps = excluded.steps, convert_ms = excluded.convert_ms, desktop_os = excluded.desktop_os, \
         desktop_browser = excluded.desktop_browser, desktop_form = excluded.desktop_form, \
         mobile_os = excluded.mobile_os, mobile_browser = excluded.mobile_browser, \
         app_version = excluded.app_version, client = excluded.client, facts = excluded.facts",
        placeholders(backend, statement_rows, 20)
    );
    let mut params = Vec::with_capacity(statement_rows * 20);
    // PostgreSQL refuses to update one row twice in a statement: only SQLite is padded.
    for c in padded(rows).take(statement_rows) {
        params.extend([
            c.journey_id.to_string().into(),
            c.flow.clone().into(),
            c.identifier.clone().into(),
            c.state.into(),
            c.outcome.map(str::to_owned).into(),
            c.root_cause.map(str::to_owned).into(),
            c.basis.map(str::to_owned).into(),
            c.started_at.into(),
            c.last_at.into(),
            c.finished_at.into(),
            c.steps.into(),
            c.convert_ms.into(),
            c.desktop.os.clone().into(),
            c.desktop.browser.clone().into(),
            c.desktop.form_factor.clone().into(),
            c.mobile.os.clone().into(),
            c.mobile.browser.clone().into(),
            c.desktop.app_version.clone().or_else(|| c.mobile.app_version.clone()).into(),
            c.client.clone().into(),
            c.facts_json.clone().into(),
        ]);
    }
    tx.execute(&Sql::verbatim(sql), &params).await?;
    Ok(())
}

fn segment_column(segment: Segment) -> &'static str {
    match segment {
        Segment::Os => "desktop_os",
        Segment::Browser => "desktop_browser",
        Segment::FormFactor => "desktop_form",
        Segment::AppVersion => "app_version",
        Segment::MobileOs => "mobile_os",
        Segment::MobileBrowser => "mobile_browser",
        Segment::Client => "client",
    }
}

/// `flow = $1 [AND started_at >= $2] [AND started_at < $n]` and its values.
fn funnel_filter(q: &FunnelQuery) -> (String, Vec<i64>) {
    let mut clauses = vec!["flow = $1".to_owned()];
    let mut values = Vec::new();
    if let Some(from) = q.from {
        values.push(from);
        clauses.push(format!("started_at >= ${}", values.len() + 1));
    }
    if let Some(to) = q.to {
        values.push(to);
        clauses.push(format!("started_at < ${}", values.len() + 1));
    }
    (clauses.join(" AND "), values)
}

/// The flow and the window's values, as bound after `funnel_filter`.
fn funnel_params(q: &FunnelQuery, values: &[i64]) -> Vec<Param> {
    std::iter::once(Param::from(q.flow.clone())).chain(values.iter().map(|v| Param::from(*v))).collect()
}

/// A count cell (NULL for an empty sum).
fn count(row: &dyn Row, i: usize) -> Result<u64> {
    Ok(u64::try_from(row.opt_int(i)?.unwrap_or(0)).unwrap_or(0))
}

/// The unit of work stitching runs in: one transaction.
struct Stitching {
    tx: Tx,
}

#[async_trait]
impl StitchUnit for Stitching {
    async fn insert_events(&mut self, events: &[StoredEvent]) -> Result<Vec<(JourneyId, String)>> {
        // The first statement writes, so SQLite takes its write lock up front.
        let mut fresh = Vec::with_capacity(events.len());
        for chunk in events.chunks(CHUNK) {
            fresh.extend(insert_events(&mut self.tx, chunk).await?);
        }
        Ok(fresh)
    }

    async fn lock_journeys(&mut self, ids: &[JourneyId], now: Millis) -> Result<Vec<JourneyRecord>> {
        let mut locked = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            locked.extend(lock_journeys(&mut self.tx, chunk, now).await?);
        }
        Ok(locked)
    }

    async fn write_journeys(&mut self, rows: &[JourneyColumns], rewrite: Rewrite) -> Result<()> {
        for chunk in rows.chunks(CHUNK) {
            write_journeys(&mut self.tx, chunk, rewrite).await?;
        }
        Ok(())
    }

    async fn mark_dirty(&mut self, hours: &BTreeSet<i64>) -> Result<()> {
        mark_dirty(&mut self.tx, hours).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await
    }
}

#[async_trait]
impl Journeys for Database {
    async fn begin_stitch(&self) -> Result<Box<dyn StitchUnit>> {
        Ok(Box::new(Stitching { tx: self.begin().await? }))
    }

    async fn finish_idle(&self, idle_since: Millis, now: Millis, limit: u32) -> Result<u64> {
        self.finish_idle_reported(idle_since, now, limit, &|_| None).await
    }

    async fn finish_idle_reported(
        &self,
        idle_since: Millis,
        now: Millis,
        limit: u32,
        report: &handoff_core::storage::JourneyReport,
    ) -> Result<u64> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "UPDATE journeys SET state = 'finished', finished_at = $1 WHERE state = 'open' AND last_at < $2 \
                 AND journey_id IN (SELECT journey_id FROM journeys WHERE state = 'open' AND last_at < $2 \
                 ORDER BY last_at LIMIT $3) RETURNING journey_id, facts, finished_at",
            )
        });
        let mut tx = self.begin().await?;
        let params = [now.into(), idle_since.into(), i64::from(limit).into()];
        let records = tx.all(&SQL, &params, record_of).await?;
        let finished: Vec<JourneyColumns> =
            records.iter().map(|j| JourneyColumns::of(j.journey_id, &j.facts, Some(now))).collect();
        for chunk in finished.chunks(CHUNK) {
            write_journeys(&mut tx, chunk, Rewrite::KeepKeys).await?;
        }
        let hours: BTreeSet<i64> = finished.iter().map(|j| hour_of(j.started_at)).collect();
        mark_dirty(&mut tx, &hours).await?;
        for message in finished.iter().filter_map(report) {
            tx.report(&message).await?;
        }
        tx.commit().await?;
        Ok(finished.len() as u64)
    }

    async fn journey(&self, id: JourneyId) -> Result<Option<JourneyRecord>> {
        static SQL: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT journey_id, facts, finished_at FROM journeys WHERE journey_id = $1"));
        self.optional(&SQL, &[id.to_string().into()], record_of).await
    }

    async fn events_of(&self, journey: JourneyId) -> Result<Vec<StoredEvent>> {
        static SQL: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(
                "SELECT event_id, name, device, flow, ts, received_at, attrs, os, browser, form_factor, app_version \
                 FROM events WHERE journey_id = $1 ORDER BY received_at, seq",
            )
        });
        self.scan(&SQL, vec![journey.to_string().into()], move |r| {
            Ok(StoredEvent {
                event_id: r.text(0)?,
                journey_id: journey,
                name: r.text(1)?,
                device: r.text(2)?,
                flow: r.opt_text(3)?,
                ts: r.int(4)?,
                received_at: r.int(5)?,
                attrs: r.text(6)?,
                os: r.opt_text(7)?,
                browser: r.opt_text(8)?,
                form_factor: r.opt_text(9)?,
                app_version: r.opt_text(10)?,
                clock_offset: None,
            })
        })
        .await
    }

    async fn search(&self, q: &JourneyQuery) -> Result<Vec<JourneyRecord>> {
        // Each filter adds its `$n` and its value, in the same order.
        let mut params: Vec<Param> = Vec::new();
        let mut clauses: Vec<String> = Vec::new();
        for (column, value) in
            [("identifier", &q.identifier), ("outcome", &q.outcome), ("root_cause", &q.root_cause), ("flow", &q.flow)]
        {
            if let Some(v) = value {
                params.push(v.clone().into());
                clauses.push(format!("{column} = ${}", params.len()));
            }
        }
        if let Some(from) = q.from {
            params.push(from.into());
            clauses.push(format!("started_at >= ${}", params.len()));
        }
        if let Some(to) = q.to {
            params.push(to.into());
            clauses.push(format!("started_at < ${}", params.len()));
        }
        if let Some((at, id)) = q.after {
            params.push(at.into());
            params.push(id.to_string().into());
            let n = params.len();
            clauses.push(format!("(started_at < ${0} OR (started_at = ${0} AND journey_id < ${n}))", n - 1));
        }
        let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let sql = Sql::new(format!(
            "SELECT journey_id, facts, finished_at FROM journeys {filter} \
             ORDER BY started_at DESC, journey_id DESC LIMIT {}",
            q.limit.clamp(1, 500)
        ));
        self.scan(&sql, params, record_of).await
    }

    async fn funnel(&self, q: &FunnelQuery, steps: usize) -> Result<Vec<FunnelCounts>> {
        let segment = match q.by {
            Some(s) => format!("NULLIF({}, '')", segment_column(s)),
            None => "NULL".to_owned(),
        };
        // Per segment: journeys, then journeys that reached each step; added up over parts.
        let mut totals: HashMap<Option<String>, Vec<u64>> = HashMap::new();
        let columns = steps + 1;
        let rows = self
            .rows_per_part(
                q.from,
                q.to,
                Some(&q.flow),
                |part, window| {
                let w = part.weight();
                let sums: Vec<String> = (0..steps)
                    .map(|i| format!("CAST(SUM(CASE WHEN (steps & {}) <> 0 THEN {w} ELSE 0 END) AS BIGINT)", 1u64 << i))
                    .collect();
                format!(
                    "SELECT {segment}, CAST(SUM({w}) AS BIGINT), {} FROM {} WHERE flow = $1 AND {window} GROUP BY 1",
                    sums.join(", "),
                    part.table()
                )
            },
                move |r| Ok((r.opt_text(0)?, (1..=columns).map(|i| count(r, i)).collect::<Result<Vec<u64>>>()?)),
            )
            .await?;
        for (key, counts) in rows {
            let slot = totals.entry(key).or_insert_with(|| vec![0; steps + 1]);
            for (total, n) in slot.iter_mut().zip(counts) {
                *total += n;
            }
        }
        let mut out: Vec<FunnelCounts> = totals
            .into_iter()
            .filter(|(_, t)| t[0] > 0)
            .map(|(segment, t)| FunnelCounts { segment, journeys: t[0], reached: t[1..].to_vec() })
            .collect();
        out.sort_by(|a, b| b.journeys.cmp(&a.journeys).then_with(|| a.segment.cmp(&b.segment)));
        Ok(out)
    }

    async fn drop_offs(&self, q: &FunnelQuery) -> Result<Vec<(String, u64)>> {
        let mut totals: HashMap<String, u64> = HashMap::new();
        let rows = self
            .rows_per_part(
                q.from,
                q.to,
                Some(&q.flow),
                |part, window| {
                    format!(
                        "SELECT root_cause, CAST(SUM({}) AS BIGINT) FROM {} WHERE flow = $1 AND {window} \
                     AND COALESCE(root_cause, '') <> '' GROUP BY root_cause",
                        part.weight(),
                        part.table()
                    )
                },
                |r| Ok((r.text(0)?, count(r, 1)?)),
            )
            .await?;
        for (cause, n) in rows {
            *totals.entry(cause).or_default() += n;
        }
        let mut out: Vec<(String, u64)> = totals.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    async fn time_to_session(&self, q: &FunnelQuery, percentiles: &[f64]) -> Result<Vec<Option<Millis>>> {
        let (filter, values) = funnel_filter(q);
        let total_sql = Sql::new(format!("SELECT COUNT(*) FROM journeys WHERE {filter} AND convert_ms IS NOT NULL"));
        let total = self.scan(&total_sql, funnel_params(q, &values), |r| count(r, 0)).await?.pop().unwrap_or(0);
        let mut out = Vec::with_capacity(percentiles.len());
        for p in percentiles {
            if total == 0 {
                out.push(None);
                continue;
            }
            // The nearest-rank percentile: the value at rank ceil(p * n).
            let rank = ((p.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total) - 1;
            let sql = Sql::new(format!(
                "SELECT convert_ms FROM journeys WHERE {filter} AND convert_ms IS NOT NULL \
                 ORDER BY convert_ms LIMIT 1 OFFSET {rank}"
            ));
            out.push(self.scan(&sql, funnel_params(q, &values), |r| r.int(0)).await?.pop());
        }
        Ok(out)
    }

    async fn outcome_counts(&self, from: Millis, to: Millis) -> Result<Vec<SegmentedOutcome>> {
        let columns: Vec<String> =
            Segment::ALL.iter().map(|(_, s)| format!("NULLIF({}, '')", segment_column(*s))).collect();
        let columns = columns.join(", ");
        type Key = (String, String, Option<String>, [Option<String>; 7]);
        let mut totals: HashMap<Key, u64> = HashMap::new();
        let rows = self
            .rows_per_part(Some(from), Some(to), None, |part, window| {
                format!(
                    "SELECT flow, outcome, NULLIF(root_cause, ''), CAST(SUM({}) AS BIGINT), {columns} FROM {} \
                     WHERE state = 'finished' AND COALESCE(outcome, '') <> '' AND COALESCE(flow, '') <> '' AND {window} \
                     GROUP BY 1, 2, 3, 5, 6, 7, 8, 9, 10, 11",
                    part.weight(),
                    part.table()
                )
            }, |r| {
                let segment = |i: usize| r.opt_text(4 + i);
                let key: Key = (
                    r.text(0)?,
                    r.text(1)?,
                    r.opt_text(2)?,
                    [segment(0)?, segment(1)?, segment(2)?, segment(3)?, segment(4)?, segment(5)?, segment(6)?],
                );
                Ok((key, count(r, 3)?))
            })
            .await?;
        for (key, n) in rows {
            *totals.entry(key).or_default() += n;
        }
        Ok(totals
            .into_iter()
            .map(|((flow, outcome, root_cause, segments), journeys)| SegmentedOutcome {
                flow,
                outcome,
                root_cause,
                journeys,
                segments,
            })
            .collect())
    }
}

#[cfg(test)]
mod ladder_tests {
    use super::*;

    #[test]
    fn statement_sizes_round_up_to_few_distinct_values() {
        let sizes: std::collections::BTreeSet<usize> = (1..=400).map(ladder).collect();
        assert!(sizes.len() <= 26, "{} distinct statement sizes", sizes.len());
        for n in 1..=400 {
            assert!(ladder(n) >= n && ladder(n) <= n + n / 4 + 8, "{n} -> {}", ladder(n));
        }
        let rows = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(padded(&rows).copied().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9]);
    }
}
