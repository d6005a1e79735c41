//! Application variables and `{{ name }}` templates, as in Spin: a variable
//! gets its value from `SPIN_VARIABLE_<NAME>` if set, else from its default.

use std::collections::{BTreeMap, BTreeSet};

/// Application variables after overrides: `None` means required and unset.
pub(crate) type Values = BTreeMap<String, Option<String>>;

/// The environment variable that overrides application variable `name`.
pub fn override_env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

pub(crate) use crate::imports::variables::is_valid_name;

/// Expands every `{{ name }}` in `template` from `values`.
pub(crate) fn expand(template: &str, values: &Values) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unterminated `{{{{` in `{template}`"))?;
        let name = after[..close].trim();
        match values.get(name) {
            Some(Some(value)) => out.push_str(value),
            Some(None) => {
                return Err(format!(
                    "variable `{name}` is required but has no value: set `{}`",
                    override_env_name(name)
                ));
            }
            None => {
                return Err(format!(
                    "unknown application variable `{name}` in `{template}`"
                ));
            }
        }
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(format!("unmatched `}}}}` in `{template}`"));
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that `template` is made only of `{{ name }}` references to
/// variables in `secrets`, so the secret lives in the environment
/// (`SPIN_VARIABLE_<NAME>`) and never in the manifest's text.
pub(crate) fn only_secrets(template: &str, secrets: &BTreeSet<String>) -> Result<(), String> {
    let advice = "write secrets as `{{ name }}` of a variable marked `secret = true`, set through its `SPIN_VARIABLE_` environment variable";
    let mut rest = template.trim();
    if rest.is_empty() {
        return Err(format!("a secret cannot be empty: {advice}"));
    }
    while !rest.is_empty() {
        let Some(after) = rest.strip_prefix("{{") else {
            return Err(format!(
                "this value would put a secret in the manifest: {advice}"
            ));
        };
        let close = after
            .find("}}")
            .ok_or_else(|| "unterminated `{{`".to_owned())?;
        let name = after[..close].trim();
        if !secrets.contains(name) {
            return Err(format!(
                "variable `{name}` holds a secret here but is not marked `secret = true`"
            ));
        }
        rest = after[close + 2..].trim_start();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{Values, expand, is_valid_name, only_secrets};

    fn values() -> Values {
        Values::from([
            ("url".to_owned(), Some("http://x".to_owned())),
            ("key".to_owned(), None),
        ])
    }

    #[test]
    fn expands_templates() {
        assert_eq!(
            expand("{{ url }}/feed", &values()).unwrap(),
            "http://x/feed"
        );
        assert_eq!(
            expand("{{url}}{{url}}", &values()).unwrap(),
            "http://xhttp://x"
        );
        assert_eq!(expand("plain", &values()).unwrap(), "plain");
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(
            expand("{{ nope }}", &values())
                .unwrap_err()
                .contains("unknown application variable `nope`")
        );
        assert!(
            expand("{{ key }}", &values())
                .unwrap_err()
                .contains("SPIN_VARIABLE_KEY")
        );
        assert!(
            expand("{{ url", &values())
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn secrets_come_only_from_secret_variables() {
        let secrets = BTreeSet::from(["s3_secret".to_owned(), "token".to_owned()]);
        assert!(only_secrets("{{ s3_secret }}", &secrets).is_ok());
        assert!(only_secrets(" {{s3_secret}}{{ token }} ", &secrets).is_ok());
        let literal = only_secrets("hunter2", &secrets).unwrap_err();
        assert!(
            literal.contains("would put a secret in the manifest"),
            "{literal}"
        );
        assert!(!literal.contains("hunter2"), "{literal}");
        let mixed = only_secrets("x{{ s3_secret }}", &secrets).unwrap_err();
        assert!(mixed.contains("would put a secret"), "{mixed}");
        let trailing = only_secrets("{{ s3_secret }}x", &secrets).unwrap_err();
        assert!(trailing.contains("would put a secret"), "{trailing}");
        let plain = only_secrets("{{ region }}", &secrets).unwrap_err();
        assert!(
            plain.contains("`region`") && plain.contains("not marked `secret = true`"),
            "{plain}"
        );
        assert!(only_secrets("  ", &secrets).unwrap_err().contains("empty"));
        assert!(
            only_secrets("{{ s3_secret", &secrets)
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn names() {
        assert!(is_valid_name("feed_url2"));
        assert!(!is_valid_name("Feed"));
        assert!(!is_valid_name("2x"));
        assert!(!is_valid_name("a-b"));
    }
}
