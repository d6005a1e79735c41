// The body of the `mark-a` and `mark-b` transformers: each message becomes
// one row of table `rows` with its coordinates and the crate's `MARK`, so a
// test can tell which version wrote a row. Two crates, two digests.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/transformer" });

use weir::function::batch_types::TableRows;

struct Mark;

impl Guest for Mark {
    fn handle_batch(messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
        Ok(messages
            .iter()
            .map(|m| {
                Outcome::Rows(vec![TableRows {
                    table: "rows".to_owned(),
                    rows: vec![format!(
                        "{{\"partition\":{},\"offset\":{},\"mark\":\"{MARK}\"}}",
                        m.partition, m.offset
                    )],
                }])
            })
            .collect())
    }
}

export!(Mark);
