//! What this host knows of each partition it owns: every table's committed
//! `txn` version (the last offset that table holds), read from the Delta
//! log on assignment and advanced by this host's own commits.

use std::collections::BTreeMap;
use std::time::Instant;

/// A topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// The topic.
    pub topic: String,
    /// The partition's number within it.
    pub partition: i32,
}

impl Partition {
    /// `topic` [`partition`].
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// The state of one owned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartState {
    /// Positioned: `versions[t]` is table `t`'s last offset (`None`: nothing yet).
    Ready(Vec<Option<i64>>),
    /// Must be re-read from the Delta log (after a failed or fenced
    /// commit) before its messages flow again; retried from `at`.
    Resync {
        /// Next attempt.
        at: Instant,
        /// Consecutive failures, for the back-off.
        attempts: u32,
    },
    /// Refused for good, with the reason (DESIGN.md §5.6).
    Stopped(String),
}

/// Owned partitions and their versions.
#[derive(Debug, Default)]
pub struct Progress {
    parts: BTreeMap<Partition, PartState>,
    /// How many of `parts` wait for a resync: the run loop asks after them
    /// for every message, and almost always none does.
    resyncing: usize,
}

impl Progress {
    /// Sets a partition's state.
    pub fn set(&mut self, partition: Partition, state: PartState) {
        let now_resyncing = matches!(state, PartState::Resync { .. });
        let was_resyncing = matches!(
            self.parts.insert(partition, state),
            Some(PartState::Resync { .. })
        );
        self.resyncing = self.resyncing + usize::from(now_resyncing) - usize::from(was_resyncing);
    }

    /// Forgets a partition (revoked).
    pub fn remove(&mut self, partition: &Partition) {
        if let Some(PartState::Resync { .. }) = self.parts.remove(partition) {
            self.resyncing -= 1;
        }
    }

    /// How many partitions are owned, whatever their state.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// The versions of a ready partition.
    pub fn versions(&self, topic: &str, partition: i32) -> Option<&[Option<i64>]> {
        match self.parts.get(&Partition::new(topic, partition)) {
            Some(PartState::Ready(v)) => Some(v),
            _ => None,
        }
    }

    /// Whether a message at `offset` still has to go to some table.
    pub fn wants(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.versions(topic, partition)
            .is_some_and(|v| v.iter().any(|t| t.is_none_or(|last| offset > last)))
    }

    /// Records a commit of table `table` up to `offset`.
    pub fn advance(&mut self, partition: &Partition, table: usize, offset: i64) {
        if let Some(PartState::Ready(v)) = self.parts.get_mut(partition)
            && let Some(slot) = v.get_mut(table)
        {
            *slot = Some(offset);
        }
    }

    /// Partitions waiting for a resync whose time has come.
    pub fn due(&self, now: Instant) -> Vec<(Partition, u32)> {
        if self.resyncing == 0 {
            return Vec::new();
        }
        self.parts
            .iter()
            .filter_map(|(p, s)| match s {
                PartState::Resync { at, attempts } if *at <= now => Some((p.clone(), *attempts)),
                _ => None,
            })
            .collect()
    }

    /// The earliest pending resync, if any.
    pub fn next_due(&self) -> Option<Instant> {
        if self.resyncing == 0 {
            return None;
        }
        self.parts
            .values()
            .filter_map(|s| match s {
                PartState::Resync { at, .. } => Some(*at),
                _ => None,
            })
            .min()
    }
}

/// Where to start reading a partition whose tables hold `versions`: just
/// after the table that is furthest behind, or `None` (the group's committed
/// offset) if some table has nothing from it yet.
pub fn start_offset(versions: &[Option<i64>]) -> Option<i64> {
    versions
        .iter()
        .copied()
        .collect::<Option<Vec<i64>>>()
        .and_then(|v| v.into_iter().min())
        .map(|last| last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_after_the_table_furthest_behind() {
        assert_eq!(start_offset(&[Some(10), Some(4)]), Some(5));
        assert_eq!(start_offset(&[Some(10), None]), None);
        assert_eq!(start_offset(&[]), None);
    }

    #[test]
    fn wants_a_message_until_every_table_has_it() {
        let mut p = Progress::default();
        let part = Partition::new("t", 0);
        p.set(part.clone(), PartState::Ready(vec![Some(10), Some(4)]));
        assert!(p.wants("t", 0, 5));
        assert!(!p.wants("t", 0, 4));
        p.advance(&part, 1, 10);
        assert!(!p.wants("t", 0, 10));
        assert!(p.wants("t", 0, 11));
        assert!(!p.wants("t", 1, 11), "not owned");
        p.set(part, PartState::Stopped("gone".to_owned()));
        assert!(!p.wants("t", 0, 11), "stopped");
    }

    #[test]
    fn resyncs_come_due_in_time_order_and_leave_with_their_partition() {
        let mut p = Progress::default();
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(5);
        let (a, b, c) = (
            Partition::new("t", 0),
            Partition::new("t", 1),
            Partition::new("t", 2),
        );
        assert_eq!(p.next_due(), None);
        p.set(
            a.clone(),
            PartState::Resync {
                at: now,
                attempts: 1,
            },
        );
        p.set(
            b.clone(),
            PartState::Resync {
                at: later,
                attempts: 2,
            },
        );
        p.set(c.clone(), PartState::Ready(vec![None]));
        assert_eq!(p.next_due(), Some(now));
        assert_eq!(p.due(now), vec![(a.clone(), 1)]);
        assert_eq!(p.due(later).len(), 2);
        // Positioned again: no longer due; set twice: counted once.
        p.set(a.clone(), PartState::Ready(vec![Some(3)]));
        p.set(
            b.clone(),
            PartState::Resync {
                at: later,
                attempts: 3,
            },
        );
        assert_eq!(p.next_due(), Some(later));
        assert_eq!(p.due(later), vec![(b.clone(), 3)]);
        // Revoked while waiting: gone.
        p.remove(&b);
        p.remove(&c);
        assert_eq!(p.next_due(), None);
        assert!(p.due(later).is_empty());
        p.set(
            c,
            PartState::Resync {
                at: now,
                attempts: 1,
            },
        );
        assert_eq!(p.due(now).len(), 1);
    }
}
