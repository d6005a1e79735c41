//! A typed transformer (`typed-transformer` world, raw bindings) for the
//! Kafka trigger's tests. Each message value is a command, and a batch's
//! columns are built from all of its messages: `reject` is rejected,
//! `wrongtype` makes table `b`'s column `n` text, `missing` leaves `n` out,
//! `short` gives `n` one value too few, `flood` writes 1,000 rows to `a`;
//! anything else becomes one row in each of tables `a` and `b`.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/typed-transformer" });

use weir::function::typed_batch_types::{Column, Reject, TableColumns, Values};

struct Typed;

fn int(name: &str, values: Vec<i64>) -> Column {
    Column { name: name.to_owned(), values: Values::Int64(values), valid: None }
}

impl Guest for Typed {
    fn handle_typed_batch(messages: Vec<Message>) -> Result<TypedOutput, Error> {
        let (mut a, mut b) = ((Vec::new(), Vec::new(), Vec::new()), (Vec::new(), Vec::new(), Vec::new(), Vec::new()));
        let mut rejects = Vec::new();
        let mut commands = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let i = i as u32;
            let value = String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned();
            match value.as_str() {
                "reject" => rejects.push(Reject { message: i, reason: "told to reject".to_owned() }),
                "flood" => {
                    for _ in 0..1000 {
                        a.0.push(i);
                        a.1.push(i64::from(m.partition));
                        a.2.push(m.offset);
                    }
                }
                _ => {
                    a.0.push(i);
                    a.1.push(i64::from(m.partition));
                    a.2.push(m.offset);
                    b.0.push(i);
                    b.1.push(i64::from(m.partition));
                    b.2.push(m.offset);
                    b.3.push(value.len() as i64);
                }
            }
            commands.push(value);
        }
        let has = |c: &str| commands.iter().any(|v| v == c);
        let mut n = int("n", b.3.clone());
        if has("wrongtype") {
            let text: Vec<String> = b.3.iter().map(|v| v.to_string()).collect();
            let mut offsets = vec![0u32];
            for t in &text {
                offsets.push(offsets.last().unwrap() + t.len() as u32);
            }
            n.values = Values::Utf8(weir::function::typed_batch_types::ByteValues {
                offsets,
                bytes: text.concat().into_bytes(),
            });
        }
        if has("short") {
            if let Values::Int64(v) = &mut n.values {
                v.pop();
            }
        }
        let mut b_columns = vec![int("partition", b.1), int("offset", b.2)];
        if !has("missing") {
            b_columns.push(n);
        }
        Ok(TypedOutput {
            tables: vec![
                TableColumns {
                    table: "a".to_owned(),
                    sources: a.0,
                    columns: vec![int("partition", a.1), int("offset", a.2)],
                },
                TableColumns { table: "b".to_owned(), sources: b.0, columns: b_columns },
            ],
            rejects,
        })
    }
}

export!(Typed);
