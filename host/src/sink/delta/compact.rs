//! Which small files of a table to compact next. A streaming writer adds
//! one file per table partition per flush, and a table that only grows in
//! files gets slower for every reader and for the writer itself (each
//! snapshot and checkpoint holds every live file). Files are sorted into
//! size tiers, each [`TIER_FACTOR`] times the one below; when one tier of
//! one table partition holds [`MIN_FILES`] files they are rewritten as one
//! file of the next tier, as in a size-tiered LSM tree: a row is rewritten
//! once per tier (a handful of times), and a partition holds at most
//! `MIN_FILES - 1` files per tier plus the files that outgrew the tiers.
//! The rewrite itself is [`super::TableWriter::compact`].

use std::collections::BTreeMap;

/// The smallest tier holds files below this size.
const FIRST_TIER: i64 = 64 << 10;

/// Each tier holds files up to this many times larger than the one below.
const TIER_FACTOR: i64 = 8;

/// Files at or above this size are in no tier and never rewritten.
pub const LARGE: i64 = 4 << 20;

/// A tier of one table partition is compacted once it holds this many files.
pub const MIN_FILES: usize = 8;

/// One compaction reads at most this many files (at most
/// `MAX_FILES × LARGE` bytes, one file at a time).
pub const MAX_FILES: usize = 64;

/// The compacted output rolls over to a new file at this size.
pub const TARGET_FILE_SIZE: u64 = 32 << 20;

/// A live data file, as far as choosing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its size in bytes.
    pub size: i64,
    /// When it was written, milliseconds since the Unix epoch.
    pub modified: i64,
    /// Its table partition's values, in partition column order.
    pub partition: Vec<Option<String>>,
}

/// The tier of a file of `size` bytes; `None` if it is large.
fn tier(size: i64) -> Option<u32> {
    if size >= LARGE {
        return None;
    }
    let mut tier = 0;
    let mut bound = FIRST_TIER;
    while size >= bound {
        tier += 1;
        bound *= TIER_FACTOR;
    }
    Some(tier)
}

/// The files (indices into `files`) to compact next, oldest first: the
/// fullest tier of any table partition, if it holds at least
/// [`MIN_FILES`], capped at [`MAX_FILES`]. Empty if nothing is due.
pub fn pick(files: &[Candidate]) -> Vec<usize> {
    let mut tiers: BTreeMap<(&[Option<String>], u32), Vec<usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        if let Some(tier) = tier(file.size) {
            tiers
                .entry((file.partition.as_slice(), tier))
                .or_default()
                .push(i);
        }
    }
    let Some(mut chosen) = tiers
        .into_values()
        .filter(|members| members.len() >= MIN_FILES)
        .max_by_key(Vec::len)
    else {
        return Vec::new();
    };
    chosen.sort_by_key(|&i| (files[i].modified, i));
    chosen.truncate(MAX_FILES);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: i64, modified: i64, day: &str) -> Candidate {
        Candidate {
            size,
            modified,
            partition: vec![Some(day.to_owned())],
        }
    }

    #[test]
    fn tiers_grow_by_the_factor_and_large_files_have_none() {
        assert_eq!(tier(0), Some(0));
        assert_eq!(tier(FIRST_TIER - 1), Some(0));
        assert_eq!(tier(FIRST_TIER), Some(1));
        assert_eq!(tier(FIRST_TIER * TIER_FACTOR - 1), Some(1));
        assert_eq!(tier(FIRST_TIER * TIER_FACTOR), Some(2));
        assert_eq!(tier(LARGE - 1), Some(2));
        assert_eq!(tier(LARGE), None);
    }

    #[test]
    fn nothing_is_due_below_min_files_in_one_tier_of_one_partition() {
        // Seven small files on each of two days, and seven of the next
        // tier on the first: no group is full.
        let mut files: Vec<Candidate> = (0..7).map(|i| file(1_000, i, "d1")).collect();
        files.extend((0..7).map(|i| file(1_000, i, "d2")));
        files.extend((0..7).map(|i| file(100_000, i, "d1")));
        files.push(file(LARGE * 2, 0, "d1"));
        assert!(pick(&files).is_empty());
    }

    #[test]
    fn the_fullest_group_is_picked_oldest_first_and_capped() {
        let mut files: Vec<Candidate> = (0..9).map(|i| file(1_000, 100 - i, "d1")).collect();
        files.extend((0..MAX_FILES as i64 + 5).map(|i| file(100_000, i, "d2")));
        files.push(file(LARGE, 0, "d2"));
        let chosen = pick(&files);
        assert_eq!(chosen.len(), MAX_FILES);
        assert!(
            chosen
                .iter()
                .all(|&i| files[i].partition[0].as_deref() == Some("d2"))
        );
        assert!(
            chosen
                .windows(2)
                .all(|w| files[w[0]].modified <= files[w[1]].modified)
        );
        assert_eq!(files[chosen[0]].modified, 0);
        assert!(!chosen.contains(&(files.len() - 1)), "the large file stays");
        // Without the second day, the first day's nine are due, oldest first.
        let chosen = pick(&files[..9]);
        assert_eq!(chosen, (0..9).rev().collect::<Vec<_>>());
    }
}
