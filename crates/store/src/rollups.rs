//! Hourly rollups of the journey table, so funnels and insights over a million journeys
//! read thousands of rows instead of scanning the journeys themselves. A rollup row
//! counts the journeys that started in one hour and share flow, state, outcome, root
//! cause, reached steps and segment. Rollups are not updated in the write path (that would
//! make every writer contend for the same hot rows): each journey write marks the hours it
//! touches dirty, and the server recomputes dirty hours once they have ended. A query
//! splits its window into clean whole hours, read from the rollups, and the rest (the
//! window's partial edge hours, dirty hours, the current hour), read from the journey
//! table, and adds the two, so its answer is exactly what a scan would give.

use std::collections::BTreeSet;

use crate::inline::Param;
use crate::writer::BatchTx;
use handoff_core::clock::Millis;
use handoff_core::error::Result;
use sqlx::any::AnyRow;

use crate::db::{Backend, Database, storage_error};

/// Milliseconds per hour.
pub const HOUR: i64 = 3_600_000;

/// The hour a time falls in.
pub fn hour_of(ms: Millis) -> i64 {
    ms.div_euclid(HOUR)
}

/// Marks hours dirty (their rollups must be recomputed), in the writer's transaction.
pub(crate) async fn mark_dirty(tx: &mut BatchTx, backend: Backend, hours: &BTreeSet<i64>) -> Result<()> {
    if hours.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=hours.len())
        .map(|i| match backend {
            Backend::Sqlite => "(?)".to_owned(),
            Backend::Postgres => format!("(${i})"),
        })
        .collect();
    let sql = format!("INSERT INTO rollup_dirty (hour) VALUES {} ON CONFLICT (hour) DO NOTHING", marks.join(", "));
    let params: Vec<Param> = hours.iter().map(|h| (*h).into()).collect();
    tx.execute(sql.as_str(), &params).await?;
    Ok(())
}

/// The rollup key columns, as read from the journey table ('' for unknown).
const KEY_FROM_JOURNEYS: &str = "COALESCE(flow, ''), state, COALESCE(outcome, ''), COALESCE(root_cause, ''), steps, \
     COALESCE(desktop_os, ''), COALESCE(desktop_browser, ''), COALESCE(desktop_form, ''), COALESCE(mobile_os, ''), \
     COALESCE(mobile_browser, ''), COALESCE(app_version, '')";

impl Database {
    /// Recomputes up to `limit` dirty hours that ended before `settled_before`, oldest
    /// first, each in its own transaction; returns how many.
    pub async fn refresh_rollups(&self, settled_before: Millis, limit: u32) -> Result<u64> {
        let hours: Vec<i64> =
            sqlx::query_scalar("SELECT hour FROM rollup_dirty WHERE hour < $1 ORDER BY hour LIMIT $2")
                .bind(hour_of(settled_before))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(storage_error)?;
        for hour in &hours {
            let mut tx = self.writer.begin().await?;
            // Taking the mark first: a writer that touches this hour meanwhile marks it
            // again (on PostgreSQL it waits for this transaction), so it is redone.
            sqlx::query("DELETE FROM rollup_dirty WHERE hour = $1")
                .bind(*hour)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
            sqlx::query("DELETE FROM journey_rollups WHERE hour = $1")
                .bind(*hour)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
            let sql = format!(
                "INSERT INTO journey_rollups (flow, state, outcome, root_cause, steps, desktop_os, desktop_browser, \
                 desktop_form, mobile_os, mobile_browser, app_version, hour, journeys) \
                 SELECT {KEY_FROM_JOURNEYS}, $1, COUNT(*) FROM journeys \
                 WHERE started_at >= $2 AND started_at < $3 AND flow IS NOT NULL \
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
            );
            sqlx::query(&sql)
                .bind(*hour)
                .bind(hour * HOUR)
                .bind((hour + 1) * HOUR)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
            tx.commit().await?;
        }
        Ok(hours.len() as u64)
    }

    /// The rows of one statement run over each part of the window `[from, to)`, for the
    /// caller to add up. `sql` gets the part and its window condition; the statement's
    /// `$1` is `flow` when one is given, and the window's parameters follow.
    pub(crate) async fn rows_per_part(
        &self,
        from: Option<Millis>,
        to: Option<Millis>,
        flow: Option<&str>,
        sql: impl Fn(&Part, &str) -> String,
    ) -> Result<Vec<AnyRow>> {
        let mut rows = Vec::new();
        for part in self.window_parts(from, to).await? {
            let (window, values) = part.filter(if flow.is_some() { 2 } else { 1 });
            let text = sql(&part, &window);
            let mut query = sqlx::query(&text);
            if let Some(flow) = flow {
                query = query.bind(flow.to_owned());
            }
            for v in values {
                query = query.bind(v);
            }
            rows.extend(query.fetch_all(&self.pool).await.map_err(storage_error)?);
        }
        Ok(rows)
    }

    /// How a window `[from, to)` splits into rollups and journey-table ranges.
    async fn window_parts(&self, from: Option<Millis>, to: Option<Millis>) -> Result<Vec<Part>> {
        // Whole hours inside the window.
        let first = from.map_or(i64::MIN / HOUR, |f| hour_of(f.saturating_add(HOUR - 1)));
        let end = to.map_or(i64::MAX / HOUR, hour_of);
        if first >= end {
            return Ok(vec![Part::Journeys { from, to }]);
        }
        let dirty: Vec<i64> = sqlx::query_scalar("SELECT hour FROM rollup_dirty WHERE hour >= $1 AND hour < $2")
            .bind(first)
            .bind(end)
            .fetch_all(&self.pool)
            .await
            .map_err(storage_error)?;
        let mut ranges: Vec<(Option<Millis>, Option<Millis>)> = Vec::new();
        if let Some(f) = from
            && f < first * HOUR
        {
            ranges.push((Some(f), Some(first * HOUR)));
        }
        for d in &dirty {
            match ranges.last_mut() {
                Some((_, Some(end))) if *end == d * HOUR => *end = (d + 1) * HOUR,
                _ => ranges.push((Some(d * HOUR), Some((d + 1) * HOUR))),
            }
        }
        if let Some(t) = to
            && end * HOUR < t
        {
            match ranges.last_mut() {
                Some((_, Some(last))) if *last == end * HOUR => *last = t,
                _ => ranges.push((Some(end * HOUR), Some(t))),
            }
        }
        let mut parts = vec![Part::Rollups { first, end, except: dirty }];
        parts.extend(ranges.into_iter().map(|(from, to)| Part::Journeys { from, to }));
        Ok(parts)
    }
}

/// Where one part of a window is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Rollups of the hours `first..end`, except the dirty ones.
    Rollups { first: i64, end: i64, except: Vec<i64> },
    /// Journeys started in `[from, to)`.
    Journeys { from: Option<Millis>, to: Option<Millis> },
}

impl Part {
    /// The table.
    pub fn table(&self) -> &'static str {
        match self {
            Self::Rollups { .. } => "journey_rollups",
            Self::Journeys { .. } => "journeys",
        }
    }

    /// What one row counts for: a rollup row its journeys, a journey row one.
    pub fn weight(&self) -> &'static str {
        match self {
            Self::Rollups { .. } => "journeys",
            Self::Journeys { .. } => "1",
        }
    }

    /// The window condition with parameters numbered from `$first`, and their values.
    pub fn filter(&self, first: usize) -> (String, Vec<i64>) {
        match self {
            Self::Rollups { first: a, end: b, except } => {
                let mut sql = format!("hour >= ${first} AND hour < ${}", first + 1);
                if !except.is_empty() {
                    let list: Vec<String> = except.iter().map(i64::to_string).collect();
                    sql.push_str(&format!(" AND hour NOT IN ({})", list.join(", ")));
                }
                (sql, vec![*a, *b])
            }
            Self::Journeys { from, to } => (
                format!("started_at >= ${first} AND started_at < ${}", first + 1),
                vec![from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX)],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_down_also_before_the_epoch() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR - 1), 0);
        assert_eq!(hour_of(HOUR), 1);
        assert_eq!(hour_of(-1), -1);
    }
}
