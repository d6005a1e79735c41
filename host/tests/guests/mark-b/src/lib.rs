//! Version 2 of the hot-swap tests' transform (see `../../mark.rs`).

const MARK: &str = "v2";

include!("../../mark.rs");
