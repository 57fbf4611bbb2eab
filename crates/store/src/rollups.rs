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

use std::sync::LazyLock;

use handoff_core::clock::Millis;
use handoff_core::error::Result;
use handoff_core::observe::stitch::{HOUR, hour_of};

use crate::sql::{Param, Row, Sql, Tx};
use crate::{Backend, Database};

/// Marks hours dirty (their rollups must be recomputed), in the writer's transaction.
pub(crate) async fn mark_dirty(tx: &mut Tx, hours: &BTreeSet<i64>) -> Result<()> {
    if hours.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=hours.len())
        .map(|i| match tx.backend() {
            Backend::Sqlite => "(?)".to_owned(),
            Backend::Postgres => format!("(${i})"),
        })
        .collect();
    let sql = format!("INSERT INTO rollup_dirty (hour) VALUES {} ON CONFLICT (hour) DO NOTHING", marks.join(", "));
    let params: Vec<Param> = hours.iter().map(|h| (*h).into()).collect();
    tx.execute(&Sql::verbatim(sql), &params).await?;
    Ok(())
}

/// The rollup key columns, as read from the journey table ('' for unknown).
const KEY_FROM_JOURNEYS: &str = "COALESCE(flow, ''), state, COALESCE(outcome, ''), COALESCE(root_cause, ''), steps, \
     COALESCE(desktop_os, ''), COALESCE(desktop_browser, ''), COALESCE(desktop_form, ''), COALESCE(mobile_os, ''), \
     COALESCE(mobile_browser, ''), COALESCE(app_version, ''), COALESCE(client, '')";

impl Database {
    /// Recomputes up to `limit` dirty hours that ended before `settled_before`, oldest
    /// first, each in its own transaction; returns how many.
    pub async fn refresh_rollups(&self, settled_before: Millis, limit: u32) -> Result<u64> {
        static DUE: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT hour FROM rollup_dirty WHERE hour < $1 ORDER BY hour LIMIT $2"));
        static TAKE_MARK: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM rollup_dirty WHERE hour = $1"));
        static FORGET: LazyLock<Sql> = LazyLock::new(|| Sql::new("DELETE FROM journey_rollups WHERE hour = $1"));
        static RECOUNT: LazyLock<Sql> = LazyLock::new(|| {
            Sql::new(format!(
                "INSERT INTO journey_rollups (flow, state, outcome, root_cause, steps, desktop_os, desktop_browser, \
                 desktop_form, mobile_os, mobile_browser, app_version, client, hour, journeys) \
                 SELECT {KEY_FROM_JOURNEYS}, $1, COUNT(*) FROM journeys \
                 WHERE started_at >= $2 AND started_at < $3 AND flow IS NOT NULL \
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"
            ))
        });
        let hours =
            self.scan(&DUE, vec![hour_of(settled_before).into(), i64::from(limit).into()], |row| row.int(0)).await?;
        for hour in &hours {
            let mut tx = self.begin().await?;
            // Taking the mark first: a writer that touches this hour meanwhile marks it
            // again (on PostgreSQL it waits for this transaction), so it is redone.
            tx.execute(&TAKE_MARK, &[(*hour).into()]).await?;
            tx.execute(&FORGET, &[(*hour).into()]).await?;
            tx.execute(&RECOUNT, &[(*hour).into(), (hour * HOUR).into(), ((hour + 1) * HOUR).into()]).await?;
            tx.commit().await?;
        }
        Ok(hours.len() as u64)
    }

    /// The rows of one statement run over each part of the window `[from, to)`, decoded,
    /// for the caller to add up. `sql` gets the part and its window condition; the
    /// statement's `$1` is `flow` when one is given, and the window's parameters follow.
    pub(crate) async fn rows_per_part<T: Send + 'static>(
        &self,
        from: Option<Millis>,
        to: Option<Millis>,
        flow: Option<&str>,
        sql: impl Fn(&Part, &str) -> String,
        decode: impl Fn(&dyn Row) -> Result<T> + Send + Sync + Clone + 'static,
    ) -> Result<Vec<T>> {
        let mut rows = Vec::new();
        for part in self.window_parts(from, to).await? {
            let (window, values) = part.filter(if flow.is_some() { 2 } else { 1 });
            let text = Sql::new(sql(&part, &window));
            let mut params: Vec<Param> = flow.map(Param::from).into_iter().collect();
            params.extend(values.into_iter().map(Param::from));
            rows.extend(self.scan(&text, params, decode.clone()).await?);
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
        static DIRTY: LazyLock<Sql> =
            LazyLock::new(|| Sql::new("SELECT hour FROM rollup_dirty WHERE hour >= $1 AND hour < $2"));
        let dirty = self.all(&DIRTY, &[first.into(), end.into()], |row| row.int(0)).await?;
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
