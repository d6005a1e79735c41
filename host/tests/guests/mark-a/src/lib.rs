//! Version 1 of the hot-swap tests' transform (see `../../mark.rs`).

const MARK: &str = "v1";

include!("../../mark.rs");
