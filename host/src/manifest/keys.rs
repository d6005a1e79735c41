//! Finds the dotted key path that a byte span of the manifest belongs to, so
//! that errors from the TOML deserializer name a key, not just a position.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The deepest key whose key or value contains `span`, e.g.
/// `trigger.cron[0].component`; empty if none does. Table spans cover only
/// their header, so every table is searched, not just those containing `span`.
pub(super) fn key_at(source: &str, span: &Range<usize>) -> String {
    let Ok(table) = DeTable::parse(source) else {
        return String::new();
    };
    find_in_table(table.get_ref(), span).unwrap_or_default()
}

fn find_in_table(table: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let name = key.get_ref().to_string();
        if contains(&key.span(), span) {
            return Some(name);
        }
        match find_in_value(value, span) {
            Some(inner) if inner.starts_with('[') => Some(format!("{name}{inner}")),
            Some(inner) => Some(format!("{name}.{inner}")),
            None => contains(&value.span(), span).then_some(name),
        }
    })
}

fn find_in_value(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, span),
        DeValue::Array(items) => {
            items
                .iter()
                .enumerate()
                .find_map(|(i, item)| match find_in_value(item, span) {
                    Some(inner) if inner.starts_with('[') => Some(format!("[{i}]{inner}")),
                    Some(inner) => Some(format!("[{i}].{inner}")),
                    None => contains(&item.span(), span).then(|| format!("[{i}]")),
                })
        }
        _ => None,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

#[cfg(test)]
mod tests {
    use super::key_at;

    #[test]
    fn finds_nested_keys_and_array_indices() {
        let src = "[a]\nb = 1\n[[t.c]]\nx = 1\n[[t.c]]\ny = \"bad\"\n";
        let at = src.find("\"bad\"").unwrap_or_default();
        assert_eq!(key_at(src, &(at..at + 5)), "t.c[1].y");
        let at = src.find('1').unwrap_or_default();
        assert_eq!(key_at(src, &(at..at + 1)), "a.b");
    }
}
