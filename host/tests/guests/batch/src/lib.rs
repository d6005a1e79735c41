//! A transformer: a message whose value is a JSON object becomes one row of
//! table `rows`, with the message's coordinates, key and headers added
//! (so tests see every field arrive); anything else is rejected.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/transformer" });

use weir::function::batch_types::TableRows;

struct Batch;

impl Guest for Batch {
    fn handle_batch(messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
        Ok(messages
            .into_iter()
            .map(|m| match m.value.as_deref().map(std::str::from_utf8) {
                Some(Ok(text)) if text.trim_start().starts_with('{') && text.trim_end().ends_with('}') => {
                    let body = text.trim().trim_start_matches('{').trim_end_matches('}').trim();
                    let sep = if body.is_empty() { "" } else { "," };
                    let text_or_null = |bytes: Option<&[u8]>| match bytes {
                        Some(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
                        None => "null".to_owned(),
                    };
                    let headers: Vec<String> = m
                        .headers
                        .iter()
                        .map(|h| format!("[\"{}\",{}]", h.key, text_or_null(h.value.as_deref())))
                        .collect();
                    let meta = format!(
                        "\"topic\":\"{}\",\"partition\":{},\"timestamp_ms\":{},\"key\":{},\"headers\":[{}]",
                        m.topic,
                        m.partition,
                        m.timestamp_ms.map_or("null".to_owned(), |t| t.to_string()),
                        text_or_null(m.key.as_deref()),
                        headers.join(",")
                    );
                    Outcome::Rows(vec![TableRows {
                        table: "rows".to_owned(),
                        rows: vec![format!("{{\"offset\":{},{meta}{sep}{body}}}", m.offset)],
                    }])
                }
                _ => Outcome::Reject("value is not a JSON object".to_owned()),
            })
            .collect())
    }
}

export!(Batch);
