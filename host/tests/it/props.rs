//! Hostile input, generated: thousands of arbitrary and near-valid inputs
//! per property, each of which must give a result or a clear error and
//! never a panic. The manifest parser and validator (arbitrary text, and
//! the repo's own `spin.toml` mutated), and the GTFS-Realtime decoder
//! (arbitrary bytes, real feeds mutated, nesting far past any limit).

use std::path::Path;

use proptest::prelude::*;
use weir::{Manifest, ManifestError};

fn repo_manifest() -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// A manifest either loads, or every problem names a place inside the
/// text (1-based line and column) and says what is wrong.
fn check_manifest(path: &Path, text: &str) -> Result<(), TestCaseError> {
    match Manifest::parse(path, text, Vec::new()) {
        Ok(_) => Ok(()),
        Err(ManifestError::Invalid(problems)) => {
            prop_assert!(!problems.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for problem in problems {
                let at = &problem.location;
                prop_assert!(
                    at.line >= 1 && at.line <= lines,
                    "{problem} (of {lines} lines)"
                );
                prop_assert!(at.column >= 1, "{problem}");
                prop_assert!(!problem.message.trim().is_empty(), "{problem}");
            }
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "unexpected error kind: {other}"
        ))),
    }
}

/// One edit of a text: delete, duplicate or swap lines, overwrite a byte
/// with a character TOML cares about, or cut the text short.
#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Overwrite(usize, char),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let tricky = prop::sample::select(vec![
        '"', '\'', '[', ']', '{', '}', '=', '.', ',', '#', '\n', '\\', '0', '-', ' ', 'é', '\u{0}',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), tricky).prop_map(|(at, c)| Edit::Overwrite(at, c)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len().max(1);
    match *edit {
        Edit::DeleteLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
            lines.join("\n")
        }
        Edit::DuplicateLine(i) => {
            if let Some(line) = lines.get(i % n).copied() {
                lines.insert(i % n, line);
            }
            lines.join("\n")
        }
        Edit::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
        Edit::Overwrite(at, c) => {
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                let i = at % chars.len();
                chars[i] = c;
            }
            chars.into_iter().collect()
        }
        Edit::Truncate(at) => text.chars().take(at % (text.chars().count() + 1)).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_gives_a_manifest_or_located_errors(text in any::<String>()) {
        let (path, _) = repo_manifest();
        check_manifest(&path, &text)?;
    }

    #[test]
    fn arbitrary_toml_shapes_give_a_manifest_or_located_errors(
        lines in prop::collection::vec(
            prop_oneof![
                Just("spin_manifest_version = 2".to_owned()),
                Just("[application]".to_owned()),
                Just("name = \"x\"".to_owned()),
                Just("[[trigger.kafka]]".to_owned()),
                Just("[[trigger.cron]]".to_owned()),
                Just("[component.a]".to_owned()),
                Just("[variables]".to_owned()),
                "[a-z_.]{1,12} = (\"[^\"]{0,8}\"|[0-9]{1,4}|true|\\[\\]|\\{\\})",
            ],
            0..24,
        )
    ) {
        let (path, _) = repo_manifest();
        check_manifest(&path, &lines.join("\n"))?;
    }

    #[test]
    fn the_repo_manifest_mutated_gives_a_manifest_or_located_errors(
        edits in prop::collection::vec(edit(), 1..4)
    ) {
        let (path, text) = repo_manifest();
        let mutated = edits.iter().fold(text, |t, e| apply(&t, e));
        check_manifest(&path, &mutated)?;
    }
}

/// The encoded sample feeds the decoder is given mutated.
fn sample_feeds() -> Vec<Vec<u8>> {
    let sample = gtfs_rt::sample::Sample::new(20, 5);
    let t = 1_764_000_000;
    vec![
        gtfs_rt::encode(&sample.vehicle_positions(t)),
        gtfs_rt::encode(&sample.trip_updates(t)),
        gtfs_rt::encode(&sample.alerts(t)),
    ]
}

/// Decoding gives a feed or an error; a feed gives its messages.
fn check_decode(bytes: &[u8]) {
    if let Ok(feed) = gtfs_rt::decode(bytes) {
        let count = gtfs_rt::messages(&feed).count();
        assert_eq!(count, feed.entity.len());
        // What decoded re-encodes.
        let _ = gtfs_rt::encode(&feed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_decode_to_a_feed_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_decode(&bytes);
    }

    #[test]
    fn mutated_feeds_decode_to_a_feed_or_an_error(
        which in 0usize..3,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = sample_feeds().swap_remove(which);
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        let keep = bytes.len() - cut % (bytes.len() / 4 + 1);
        bytes.truncate(keep);
        check_decode(&bytes);
    }
}

#[test]
fn nesting_far_past_any_limit_is_an_error_not_a_stack_overflow() {
    // GTFS-RT's messages do not nest into themselves; what a hostile feed
    // can nest is unknown groups (here field 99, wire type 3), 100,000
    // deep: prost's recursion limit turns it into an error.
    let groups: Vec<u8> = std::iter::repeat_n([0x9b, 0x06], 100_000)
        .flatten()
        .collect();
    assert!(gtfs_rt::decode(&groups).is_err());
}
