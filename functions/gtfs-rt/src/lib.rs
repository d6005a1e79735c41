//! GTFS-Realtime for weir: the prost types of `proto/gtfs-realtime.proto`,
//! decoding, and the JSON message per entity that the fetch function sends
//! to Kafka. With feature `sample`, a generator of realistic feeds.
//! Pure computation: no I/O, so it runs the same natively and in Wasm.

pub mod date;
pub mod json;
pub mod message;
#[cfg(feature = "sample")]
pub mod sample;
pub mod text;

/// Generated from `proto/gtfs-realtime.proto` (package `transit_realtime`).
#[allow(clippy::all, reason = "generated code")]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/transit_realtime.rs"));
}

include!(concat!(env!("OUT_DIR"), "/enum_names.rs"));

use prost::Message as _;

pub use json::{EntityMessage, messages};
pub use text::{Repairs, encoding};

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

/// Decodes one `FeedMessage`; string fields that are not UTF-8 are decoded
/// with U+FFFD (see [`decode_with`]). Unknown fields and extensions are skipped.
pub fn decode(bytes: &[u8]) -> Result<pb::FeedMessage, DecodeError> {
    decode_with(bytes, None).map(|d| d.feed)
}

/// A decoded feed and what was done to its strings that were not UTF-8.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The feed.
    pub feed: pb::FeedMessage,
    /// String fields rewritten because they were not UTF-8.
    pub repairs: Repairs,
}

/// Decodes one `FeedMessage` whose string fields may not all be UTF-8:
/// those that are not are decoded from `legacy` (the feed's declared
/// encoding, e.g. Shift-JIS) if given, and with U+FFFD for whatever is not
/// valid text; [`Decoded::repairs`] counts them. Valid UTF-8 is kept as is,
/// and a feed that is all UTF-8 costs nothing extra.
pub fn decode_with(
    bytes: &[u8],
    legacy: Option<&'static encoding_rs::Encoding>,
) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let source = match pb::FeedMessage::decode(bytes) {
        Ok(feed) => {
            return Ok(Decoded {
                feed,
                repairs: Repairs::default(),
            });
        }
        Err(e) => e,
    };
    let protobuf = |source| DecodeError::Protobuf {
        len: bytes.len(),
        source,
    };
    match text::repair(bytes, legacy) {
        Some((repaired, repairs)) if repairs != Repairs::default() => {
            let feed = pb::FeedMessage::decode(repaired.as_slice()).map_err(protobuf)?;
            Ok(Decoded { feed, repairs })
        }
        // Nothing to repair (or not walkable): broken for another reason.
        _ => Err(protobuf(source)),
    }
}

/// Encodes a `FeedMessage` (used by the sample generator and tests).
pub fn encode(feed: &pb::FeedMessage) -> Vec<u8> {
    feed.encode_to_vec()
}
