//! A transformer: a message whose value is a JSON object becomes one row of
//! table `rows` (with its offset added); anything else is rejected.

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
                    Outcome::Rows(vec![TableRows {
                        table: "rows".to_owned(),
                        rows: vec![format!("{{\"offset\":{}{sep}{body}}}", m.offset)],
                    }])
                }
                _ => Outcome::Reject("value is not a JSON object".to_owned()),
            })
            .collect())
    }
}

export!(Batch);
