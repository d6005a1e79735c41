//! A transformer that traps on every call: a deploy's smoke test must
//! refuse it.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/transformer" });

struct TrapBatch;

impl Guest for TrapBatch {
    fn handle_batch(messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
        if std::hint::black_box(messages.len()) != usize::MAX {
            panic!("trap-batch guest panics on purpose");
        }
        Ok(Vec::new())
    }
}

export!(TrapBatch);
