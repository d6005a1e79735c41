//! A transformer that answers any batch with a million outcomes, whatever
//! it was given.

wit_bindgen::generate!({ path: "../../../../wit", world: "weir:function/transformer" });

struct Overflow;

impl Guest for Overflow {
    fn handle_batch(_messages: Vec<Message>) -> Result<Vec<Outcome>, Error> {
        Ok((0..1_000_000).map(|_| Outcome::Rows(Vec::new())).collect())
    }
}

export!(Overflow);
