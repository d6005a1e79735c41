//! GTFS-Realtime for weir: the prost types of `proto/gtfs-realtime.proto`,
//! decoding, and the JSON message per entity that the fetch function sends
//! to Kafka. With feature `sample`, a generator of realistic feeds.
//! Pure computation: no I/O, so it runs the same natively and in Wasm.

pub mod date;
pub mod json;
pub mod message;
pub mod row;
#[cfg(feature = "sample")]
pub mod sample;

/// Generated from `proto/gtfs-realtime.proto` (package `transit_realtime`).
#[allow(clippy::all, reason = "generated code")]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/transit_realtime.rs"));
}

include!(concat!(env!("OUT_DIR"), "/enum_names.rs"));

use prost::Message as _;

pub use json::{EntityMessage, messages};

/// Why bytes are not a GTFS-Realtime feed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body was empty.
    #[error("empty feed: zero bytes")]
    Empty,
    /// The bytes are not a `FeedMessage` (not protobuf, truncated, or missing required fields).
    #[error("not a GTFS-Realtime FeedMessage ({len} bytes)")]
    Protobuf {
        /// Size of the body.
        len: usize,
        /// prost's explanation.
        #[source]
        source: prost::DecodeError,
    },
}

/// Decodes one `FeedMessage`. Unknown fields and extensions are skipped.
pub fn decode(bytes: &[u8]) -> Result<pb::FeedMessage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    pb::FeedMessage::decode(bytes).map_err(|source| DecodeError::Protobuf {
        len: bytes.len(),
        source,
    })
}

/// Encodes a `FeedMessage` (used by the sample generator and tests).
pub fn encode(feed: &pb::FeedMessage) -> Vec<u8> {
    feed.encode_to_vec()
}
