//! Stitching: a group of events folded into their journeys, in one unit of work. The events
//! are stored first (a repeated event id is ignored, so a retried batch changes nothing),
//! then the journeys they belong to are read *locked*, so no other writer or instance
//! changes them before this unit writes them back; each journey's facts take the new
//! events, are diagnosed again, and the rows are written with the hours they started in
//! marked for their rollups to be recomputed. The store provides the unit ([`StitchUnit`]:
//! how to lock and write on its database); what a journey becomes is decided here.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use async_trait::async_trait;

use crate::clock::Millis;
use crate::domain::JourneyId;
use crate::error::Result;
use crate::observe::JourneyColumns;
use crate::storage::{JourneyRecord, StoredEvent};

/// Milliseconds per hour: the rollups' unit.
pub const HOUR: Millis = 3_600_000;

/// The hour a time falls in (also before the epoch).
pub fn hour_of(ms: Millis) -> i64 {
    ms.div_euclid(HOUR)
}

/// Which columns a journey write rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Every column: new journeys, and journeys whose identifier or start moved.
    All,
    /// All but `identifier` and `started_at`, which these rows keep (so an index on them
    /// need not be touched).
    KeepKeys,
}

/// One transaction of the store, for stitching.
#[async_trait]
pub trait StitchUnit: Send {
    /// Stores the events; returns the (journey, event id) of those that were new.
    async fn insert_events(&mut self, events: &[StoredEvent]) -> Result<Vec<(JourneyId, String)>>;
    /// The rows of these journeys (sorted, distinct ids), locked until the unit ends; a
    /// journey without a row yet comes back with empty facts.
    async fn lock_journeys(&mut self, ids: &[JourneyId], now: Millis) -> Result<Vec<JourneyRecord>>;
    /// Writes journey rows back.
    async fn write_journeys(&mut self, rows: &[JourneyColumns], rewrite: Rewrite) -> Result<()>;
    /// Marks hours whose rollups must be recomputed.
    async fn mark_dirty(&mut self, hours: &BTreeSet<i64>) -> Result<()>;
    /// Commits everything above, or nothing.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// Stores `events` and folds the new ones into their journeys, in `unit`; returns the
/// (journey, event id) of the new events.
pub async fn stitch(mut unit: Box<dyn StitchUnit>, events: &[StoredEvent]) -> Result<Vec<(JourneyId, String)>> {
    let fresh = unit.insert_events(events).await?;
    let is_new: HashSet<(JourneyId, &str)> = fresh.iter().map(|(j, e)| (*j, e.as_str())).collect();
    let mut by_journey: BTreeMap<JourneyId, Vec<&StoredEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| is_new.contains(&(e.journey_id, e.event_id.as_str()))) {
        by_journey.entry(e.journey_id).or_default().push(e);
    }
    // Sorted ids: instances lock rows in the same order, so they cannot deadlock.
    let ids: Vec<JourneyId> = by_journey.keys().copied().collect();
    let now = events.iter().map(|e| e.received_at).max().unwrap_or_default();
    // The hours these journeys started in, before and after: their rollups change.
    let mut hours = BTreeSet::new();
    let (mut moved, mut kept) = (Vec::new(), Vec::new());
    for mut j in unit.lock_journeys(&ids, now).await? {
        let before = (j.facts.events > 0).then(|| (j.facts.identifier.clone(), j.facts.started_at()));
        if let Some((_, started_at)) = &before {
            hours.insert(hour_of(*started_at));
        }
        for e in by_journey.get(&j.journey_id).into_iter().flatten() {
            j.facts.fold(e);
        }
        let row = JourneyColumns::of(j.journey_id, &j.facts, j.finished_at);
        hours.insert(hour_of(row.started_at));
        match before {
            Some(keys) if keys == (row.identifier.clone(), row.started_at) => kept.push(row),
            _ => moved.push(row),
        }
    }
    unit.write_journeys(&moved, Rewrite::All).await?;
    unit.write_journeys(&kept, Rewrite::KeepKeys).await?;
    unit.mark_dirty(&hours).await?;
    unit.commit().await?;
    Ok(fresh)
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
