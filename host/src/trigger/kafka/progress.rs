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

/// One of a trigger's tables: an output table (by its index in name
/// order) or the dead-letter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `tables` of the trigger, in name order.
    Output(usize),
    /// The trigger's `dead_letter` table.
    DeadLetters,
}

/// Every table's last offset of one partition (its `txn` version; `None`:
/// nothing of the partition yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// Per output table, in name order.
    pub outputs: Vec<Option<i64>>,
    /// The dead-letter table's.
    pub dead_letters: Option<i64>,
}

impl Versions {
    /// One table's version; `None` if `target` is not one of them.
    pub fn get(&self, target: Target) -> Option<Option<i64>> {
        match target {
            Target::Output(t) => self.outputs.get(t).copied(),
            Target::DeadLetters => Some(self.dead_letters),
        }
    }

    /// One table's version, to set; `None` if `target` is not one of them.
    pub fn slot(&mut self, target: Target) -> Option<&mut Option<i64>> {
        match target {
            Target::Output(t) => self.outputs.get_mut(t),
            Target::DeadLetters => Some(&mut self.dead_letters),
        }
    }

    /// Every table's version, outputs first.
    pub fn iter(&self) -> impl Iterator<Item = Option<i64>> + '_ {
        self.outputs
            .iter()
            .copied()
            .chain(std::iter::once(self.dead_letters))
    }

    /// Whether `target` still needs the message at `offset`.
    pub fn needs(&self, target: Target, offset: i64) -> bool {
        self.get(target)
            .is_some_and(|v| v.is_none_or(|last| offset > last))
    }

    /// Where to start reading the partition: just after the table that is
    /// furthest behind, or `None` (the group's committed offset) if some
    /// table has nothing from it yet.
    pub fn start_offset(&self) -> Option<i64> {
        self.iter()
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().min())
            .map(|last| last + 1)
    }
}

/// The state of one owned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartState {
    /// Positioned: every table's last offset.
    Ready(Versions),
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
    pub fn versions(&self, topic: &str, partition: i32) -> Option<&Versions> {
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

    /// Records a commit of `target` up to `offset`.
    pub fn advance(&mut self, partition: &Partition, target: Target, offset: i64) {
        if let Some(PartState::Ready(v)) = self.parts.get_mut(partition)
            && let Some(slot) = v.slot(target)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(outputs: &[Option<i64>], dead_letters: Option<i64>) -> Versions {
        Versions {
            outputs: outputs.to_vec(),
            dead_letters,
        }
    }

    #[test]
    fn starts_after_the_table_furthest_behind() {
        assert_eq!(versions(&[Some(10)], Some(4)).start_offset(), Some(5));
        assert_eq!(versions(&[Some(3)], Some(4)).start_offset(), Some(4));
        assert_eq!(versions(&[Some(10), None], Some(12)).start_offset(), None);
        assert_eq!(versions(&[], None).start_offset(), None);
        assert_eq!(versions(&[], Some(0)).start_offset(), Some(1));
    }

    #[test]
    fn wants_a_message_until_every_table_has_it() {
        let mut p = Progress::default();
        let part = Partition::new("t", 0);
        p.set(
            part.clone(),
            PartState::Ready(versions(&[Some(10)], Some(4))),
        );
        assert!(p.wants("t", 0, 5));
        assert!(!p.wants("t", 0, 4));
        p.advance(&part, Target::DeadLetters, 10);
        assert!(!p.wants("t", 0, 10));
        assert!(p.wants("t", 0, 11));
        assert!(!p.wants("t", 1, 11), "not owned");
        p.advance(&part, Target::Output(0), 12);
        p.advance(&part, Target::Output(7), 99);
        let v = p.versions("t", 0).expect("ready");
        assert_eq!(
            v,
            &versions(&[Some(12)], Some(10)),
            "no table 7: nothing moved"
        );
        assert!(v.needs(Target::DeadLetters, 11) && !v.needs(Target::Output(0), 11));
        assert!(!v.needs(Target::Output(1), 11), "not a table");
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
        p.set(c.clone(), PartState::Ready(versions(&[None], None)));
        assert_eq!(p.next_due(), Some(now));
        assert_eq!(p.due(now), vec![(a.clone(), 1)]);
        assert_eq!(p.due(later).len(), 2);
        // Positioned again: no longer due; set twice: counted once.
        p.set(a.clone(), PartState::Ready(versions(&[Some(3)], Some(3))));
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
