//! Lineage of a table: for each version, the commit's weir provenance
//! (function, component digest, trigger, host) and what it added. Read
//! straight from the `_delta_log` commit files, which keep their version
//! numbers (the delta-rs history API drops them).

use deltalake::DeltaTable;
use futures::TryStreamExt as _;
use object_store::path::Path;

use super::DeltaError;

/// One commit of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    /// The table version it made.
    pub version: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// Delta's operation name (`WRITE`, `CREATE TABLE`, …).
    pub operation: Option<String>,
    /// `weir.function`; `None` for commits weir did not make.
    pub function: Option<String>,
    /// `weir.componentDigest`: the exact code that produced the rows.
    pub digest: Option<String>,
    /// `weir.trigger`.
    pub trigger: Option<String>,
    /// `weir.hostId`.
    pub host: Option<String>,
    /// Data files of new rows added (a compaction's rewrites are not new).
    pub files: usize,
    /// Rows added, from the files' statistics.
    pub rows: u64,
    /// Paths of the added files, relative to the table root.
    pub paths: Vec<String>,
}

/// Every commit still in the log, oldest first; with `limit`, the newest
/// `limit` of them.
pub async fn commits(table: &DeltaTable, limit: Option<usize>) -> Result<Vec<Commit>, DeltaError> {
    let name = table.table_url().to_string();
    let err = |source| DeltaError::Read {
        table: name.clone(),
        source,
    };
    let store = table.object_store();
    let listed: Vec<_> = store
        .list(Some(&Path::from("_delta_log")))
        .try_collect()
        .await
        .map_err(|e| err(e.into()))?;
    let mut files: Vec<(u64, Path)> = listed
        .into_iter()
        .filter_map(|meta| {
            let file = meta.location.filename()?;
            let version = file.strip_suffix(".json")?;
            (version.len() == 20)
                .then(|| version.parse().ok())
                .flatten()
                .map(|v| (v, meta.location.clone()))
        })
        .collect();
    files.sort_unstable_by_key(|(v, _)| *v);
    let skip = limit.map_or(0, |n| files.len().saturating_sub(n));
    let mut commits = Vec::with_capacity(files.len() - skip);
    for (version, path) in files.into_iter().skip(skip) {
        let bytes = super::read::fetch(store.as_ref(), &path)
            .await
            .map_err(err)?;
        commits.push(parse(version, &bytes).map_err(|e| err(e.into()))?);
    }
    Ok(commits)
}

/// One commit file: newline-delimited JSON actions.
fn parse(version: u64, bytes: &[u8]) -> Result<Commit, serde_json::Error> {
    let mut commit = Commit {
        version,
        ..Commit::default()
    };
    for action in serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>() {
        let action = action?;
        if let Some(info) = action.get("commitInfo") {
            let text = |key: &str| info.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            commit.timestamp_ms = info.get("timestamp").and_then(serde_json::Value::as_i64);
            commit.operation = text("operation");
            commit.function = text("weir.function");
            commit.digest = text("weir.componentDigest");
            commit.trigger = text("weir.trigger");
            commit.host = text("weir.hostId");
        } else if let Some(add) = action.get("add") {
            // A compaction's rewrite of rows other commits added.
            if add.get("dataChange").and_then(serde_json::Value::as_bool) == Some(false) {
                continue;
            }
            commit.files += 1;
            if let Some(path) = add.get("path").and_then(|p| p.as_str()) {
                commit.paths.push(path.to_owned());
            }
            let stats = add.get("stats").and_then(|s| s.as_str()).unwrap_or("{}");
            let stats: serde_json::Value = serde_json::from_str(stats)?;
            commit.rows += stats
                .get("numRecords")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
        }
    }
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_provenance_and_added_rows() {
        let log = concat!(
            r#"{"commitInfo":{"timestamp":1700000000000,"operation":"WRITE","weir.function":"f","weir.componentDigest":"sha256:ab","weir.trigger":"t","weir.hostId":"h-1"}}"#,
            "\n",
            r#"{"txn":{"appId":"weir:a:f:topic:0","version":41}}"#,
            "\n",
            r#"{"add":{"path":"date=2026-01-01/part-1.parquet","size":10,"stats":"{\"numRecords\":7}"}}"#,
            "\n",
            r#"{"add":{"path":"date=2026-01-02/part-2.parquet","size":10,"stats":"{\"numRecords\":3}"}}"#,
            "\n"
        );
        let commit = parse(5, log.as_bytes()).unwrap();
        assert_eq!(commit.version, 5);
        assert_eq!(commit.digest.as_deref(), Some("sha256:ab"));
        assert_eq!(commit.host.as_deref(), Some("h-1"));
        assert_eq!((commit.files, commit.rows), (2, 10));
        assert_eq!(commit.paths[1], "date=2026-01-02/part-2.parquet");
    }

    #[test]
    fn a_compaction_adds_no_rows() {
        let log = concat!(
            r#"{"commitInfo":{"operation":"OPTIMIZE","weir.function":"f"}}"#,
            "\n",
            r#"{"remove":{"path":"a.parquet","dataChange":false}}"#,
            "\n",
            r#"{"add":{"path":"b.parquet","size":10,"dataChange":false,"stats":"{\"numRecords\":7}"}}"#,
            "\n"
        );
        let commit = parse(9, log.as_bytes()).unwrap();
        assert_eq!(commit.operation.as_deref(), Some("OPTIMIZE"));
        assert_eq!((commit.files, commit.rows), (0, 0));
        assert!(commit.paths.is_empty());
    }

    #[test]
    fn a_foreign_commit_has_no_provenance() {
        let commit = parse(0, br#"{"commitInfo":{"operation":"CREATE TABLE"}}"#).unwrap();
        assert_eq!(commit.function, None);
        assert_eq!(commit.operation.as_deref(), Some("CREATE TABLE"));
        assert!(parse(1, b"{not json").is_err());
    }
}
