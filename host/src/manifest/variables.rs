//! Application variables and `{{ name }}` templates, as in Spin: a variable
//! gets its value from `SPIN_VARIABLE_<NAME>` if set, else from its default.

use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::{Values, expand, is_valid_name};

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
    fn names() {
        assert!(is_valid_name("feed_url2"));
        assert!(!is_valid_name("Feed"));
        assert!(!is_valid_name("2x"));
        assert!(!is_valid_name("a-b"));
    }
}
