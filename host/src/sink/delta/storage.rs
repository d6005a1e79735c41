//! Where a table lives: a local path or an object-store URL (`s3://bucket/path`
//! through deltalake's S3 support, registered when the program starts), and
//! the options handed to the object store. Concurrent commits from several hosts are safe on S3 because every
//! log entry is written with `If-None-Match: *` (conditional put): of two
//! hosts writing the same version, one gets 412 and retries on top of the
//! other (docs/decisions.md). weir refuses options that would turn that off.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr as _;

use object_store::aws::AmazonS3ConfigKey;
use url::Url;

/// Options for one table's object store, such as `aws_endpoint` or
/// `aws_region`. Values may hold secrets, so `Debug` shows only the keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl StorageOptions {
    /// Adds one option; its key should have passed [`check_option`].
    pub fn insert(&mut self, key: &str, value: String) {
        self.0.insert(key.to_ascii_lowercase(), value);
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What deltalake receives for the table at `url`: the options as
    /// written, plus, for S3, the settings that keep commits safe. They win
    /// over the `AWS_*` environment variables deltalake reads as well.
    pub(super) fn for_url(&self, url: &Url) -> HashMap<String, String> {
        let mut options: HashMap<String, String> = self.0.clone().into_iter().collect();
        if is_s3(url.scheme()) {
            options.insert("aws_conditional_put".to_owned(), "etag".to_owned());
            options.insert(UNSAFE_RENAME.to_ascii_lowercase(), "false".to_owned());
            options
                .entry("retry_timeout".to_owned())
                .or_insert_with(|| RETRY_TIMEOUT.to_owned());
        }
        options
    }
}

/// delta-rs' keys for how long the object store retries a failed request.
const RETRY_KEYS: [&str; 4] = [
    "max_retries",
    "retry_timeout",
    "init_backoff",
    "max_backoff",
];

/// How long a request to object storage is retried before the commit
/// fails and is counted, unless `retry_timeout` says otherwise: the object
/// store's own default (3 minutes) would leave a hung endpoint invisible.
const RETRY_TIMEOUT: &str = "30s";

/// delta-rs' own switch to a log store that renames without a lock (two
/// hosts can then overwrite each other's commits).
const UNSAFE_RENAME: &str = "AWS_S3_ALLOW_UNSAFE_RENAME";

fn is_s3(scheme: &str) -> bool {
    matches!(scheme, "s3" | "s3a")
}

/// Checks one storage option of the table at `uri`: the key must be one the
/// object store knows, and it must not make commits unsafe.
pub fn check_option(uri: &str, key: &str, value: &str) -> Result<(), String> {
    let scheme = uri.split_once("://").map_or("", |(scheme, _)| scheme);
    if !is_s3(scheme) {
        return Err(format!(
            "storage options apply to `s3://` tables only, not to `{uri}`"
        ));
    }
    let lower = key.to_ascii_lowercase();
    if lower == UNSAFE_RENAME.to_ascii_lowercase() || lower == "aws_s3_locking_provider" {
        return Err(format!(
            "`{key}` is not supported: weir commits to S3 with conditional writes, which need no lock"
        ));
    }
    if RETRY_KEYS.contains(&lower.as_str()) {
        return Ok(());
    }
    match AmazonS3ConfigKey::from_str(&lower) {
        Ok(AmazonS3ConfigKey::ConditionalPut) if value.trim() != "etag" => Err(format!(
            "`{key}` must stay `etag`: without conditional writes two hosts can overwrite each other's commits"
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "unknown S3 storage option `{key}` (options such as `aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`)"
        )),
    }
}

/// Whether the option `key` holds a secret: its value must then come from a
/// variable marked `secret = true`, never from the manifest's text.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        AmazonS3ConfigKey::from_str(&key),
        Ok(AmazonS3ConfigKey::SecretAccessKey | AmazonS3ConfigKey::Token)
    ) || matches!(
        key.as_str(),
        "aws_sse_customer_key_base64" | "sse_customer_key_base64"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_against_the_object_store() {
        let uri = "s3://bucket/table";
        assert!(check_option(uri, "aws_endpoint", "http://127.0.0.1:9000").is_ok());
        assert!(check_option(uri, "AWS_ALLOW_HTTP", "true").is_ok());
        assert!(check_option(uri, "aws_conditional_put", "etag").is_ok());
        assert!(check_option(uri, "timeout", "5s").is_ok());
        assert!(check_option(uri, "retry_timeout", "10s").is_ok());
        let unknown = check_option(uri, "aws_endpoitn", "x").unwrap_err();
        assert!(
            unknown.contains("unknown S3 storage option `aws_endpoitn`"),
            "{unknown}"
        );
        let unsafe_put = check_option(uri, "conditional_put", "disabled").unwrap_err();
        assert!(unsafe_put.contains("must stay `etag`"), "{unsafe_put}");
        let rename = check_option(uri, "aws_s3_allow_unsafe_rename", "true").unwrap_err();
        assert!(rename.contains("not supported"), "{rename}");
        let local = check_option("/data/table", "aws_region", "eu-west-1").unwrap_err();
        assert!(local.contains("`s3://` tables only"), "{local}");
    }

    #[test]
    fn secrets_are_recognised_and_never_shown() {
        assert!(is_secret("aws_secret_access_key"));
        assert!(is_secret("AWS_SESSION_TOKEN"));
        assert!(!is_secret("aws_access_key_id"));
        assert!(!is_secret("aws_endpoint"));
        let mut options = StorageOptions::default();
        options.insert("aws_secret_access_key", "hunter2".to_owned());
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
    }

    #[test]
    fn s3_tables_always_commit_with_conditional_writes() {
        let mut options = StorageOptions::default();
        options.insert("aws_region", "eu-west-1".to_owned());
        let s3 = options.for_url(&Url::parse("s3://bucket/t").unwrap());
        assert_eq!(s3["aws_conditional_put"], "etag");
        assert_eq!(s3["aws_s3_allow_unsafe_rename"], "false");
        assert_eq!(s3["aws_region"], "eu-west-1");
        assert_eq!(s3["retry_timeout"], "30s");
        options.insert("retry_timeout", "2m".to_owned());
        let s3 = options.for_url(&Url::parse("s3://bucket/t").unwrap());
        assert_eq!(s3["retry_timeout"], "2m");
        let local = StorageOptions::default().for_url(&Url::parse("file:///t").unwrap());
        assert!(local.is_empty());
    }
}
