//! A transformer for the Kafka trigger's tests. Each message value is a
//! command: `trap` panics, `hang` loops forever, `reject` is rejected,
//! `badrow` writes a row that does not fit table `b`, `stray` writes to an
//! undeclared table; anything else becomes one row in each of tables `a`
//! and `b` (fan-out).

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/transformer" });

use weir::function::batch_types::TableRows;

struct Poison;

fn rows(table: &str, row: String) -> TableRows {
    TableRows {
        table: table.to_owned(),
        rows: vec![row],
    }
}

impl Guest for Poison {
    fn handle_batch(messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let value = String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned();
            let at = format!("\"partition\":{},\"offset\":{}", m.partition, m.offset);
            out.push(match value.as_str() {
                "trap" => panic!("poison message at offset {}", m.offset),
                "hang" => loop {
                    std::hint::black_box(&value);
                },
                "reject" => Outcome::Reject("told to reject".to_owned()),
                "badrow" => Outcome::Rows(vec![
                    rows("a", format!("{{{at}}}")),
                    rows("b", format!("{{{at},\"n\":\"not a number\"}}")),
                ]),
                "stray" => Outcome::Rows(vec![rows("nope", format!("{{{at}}}"))]),
                _ => Outcome::Rows(vec![
                    rows("a", format!("{{{at}}}")),
                    rows("b", format!("{{{at},\"n\":{}}}", value.len())),
                ]),
            });
        }
        Ok(out)
    }
}

export!(Poison);
