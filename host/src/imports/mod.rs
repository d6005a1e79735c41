//! The imports weir offers guests beyond WASI, one small file each: a data
//! type, a `Host` impl of the generated trait, and how it is added to a
//! linker.

pub mod feed;
pub mod outbound_http;
pub mod producer;
pub mod variables;
