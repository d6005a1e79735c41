//! Text that is not UTF-8. GTFS-Realtime is proto2, whose producers often
//! never checked that `string` fields hold UTF-8 (Shift-JIS labels, Latin-1
//! stop names); prost refuses the whole feed for one such string. When a
//! feed does not decode, its wire format is walked with the proto's own
//! field table and every string field that is not UTF-8 is rewritten —
//! transcoded from the feed's declared legacy encoding, or with U+FFFD for
//! what is not valid text — then decoded again. Valid UTF-8 is never touched.

use encoding_rs::Encoding;

include!(concat!(env!("OUT_DIR"), "/text_fields.rs"));

/// A field of a message type that can carry text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    /// A `string` field.
    Text,
    /// A message field, by the index of its type in `MESSAGES`.
    Message(usize),
}

/// Nesting deeper than this is not walked (prost's own recursion limit).
const MAX_DEPTH: u32 = 100;

/// What became of a feed's string fields that were not UTF-8.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repairs {
    /// Decoded from the declared legacy encoding, without loss.
    pub transcoded: u64,
    /// Not valid text (in the declared encoding, or in UTF-8 without one):
    /// decoded with U+FFFD for each invalid sequence.
    pub invalid: u64,
}

/// Looks up a legacy encoding by its WHATWG label (`shift_jis`, `euc-jp`,
/// `iso-8859-1`, `windows-1252`, `gbk`, …), as browsers do.
pub fn encoding(label: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        format!(
            "`{label}` is not a known text encoding (WHATWG labels such as `shift_jis`, `euc-jp`, `windows-1252`)"
        )
    })
}

/// `bytes` (a `FeedMessage`) with every string field that is not UTF-8
/// rewritten as UTF-8, and what was rewritten; `None` if the wire format
/// cannot be walked (then the feed is broken for other reasons).
pub(crate) fn repair(
    bytes: &[u8],
    legacy: Option<&'static Encoding>,
) -> Option<(Vec<u8>, Repairs)> {
    let mut walk = Walk {
        legacy,
        repairs: Repairs::default(),
    };
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 4);
    walk.message(bytes, FEED_MESSAGE, 0, &mut out)?;
    Some((out, walk.repairs))
}

struct Walk {
    legacy: Option<&'static Encoding>,
    repairs: Repairs,
}

impl Walk {
    /// Copies message `input` of type `MESSAGES[kind]` to `out`, field by
    /// field, rewriting invalid text and walking nested messages.
    fn message(&mut self, input: &[u8], kind: usize, depth: u32, out: &mut Vec<u8>) -> Option<()> {
        let fields = MESSAGES.get(kind)?.1;
        let mut rest = input;
        while !rest.is_empty() {
            let field_start = rest;
            let key = varint(&mut rest)?;
            let key_bytes = &field_start[..field_start.len() - rest.len()];
            let number = u32::try_from(key >> 3).ok()?;
            match key & 7 {
                0 => {
                    varint(&mut rest)?;
                }
                1 => rest = rest.get(8..)?,
                5 => rest = rest.get(4..)?,
                2 => {
                    let len = usize::try_from(varint(&mut rest)?).ok()?;
                    let payload = rest.get(..len)?;
                    rest = &rest[len..];
                    let field = fields.iter().find(|(n, _)| *n == number).map(|(_, f)| *f);
                    match field {
                        Some(Field::Text) if std::str::from_utf8(payload).is_err() => {
                            let text = self.text(payload);
                            out.extend_from_slice(key_bytes);
                            put_varint(out, text.len() as u64);
                            out.extend_from_slice(text.as_bytes());
                            continue;
                        }
                        Some(Field::Message(nested)) if depth < MAX_DEPTH => {
                            let mut inner = Vec::with_capacity(payload.len());
                            self.message(payload, nested, depth + 1, &mut inner)?;
                            out.extend_from_slice(key_bytes);
                            put_varint(out, inner.len() as u64);
                            out.extend_from_slice(&inner);
                            continue;
                        }
                        _ => {}
                    }
                }
                // Groups (3, 4) are not in GTFS-Realtime; 6 and 7 do not exist.
                _ => return None,
            }
            out.extend_from_slice(&field_start[..field_start.len() - rest.len()]);
        }
        Some(())
    }

    /// The text of a string field that is not UTF-8.
    fn text(&mut self, bytes: &[u8]) -> String {
        if let Some(encoding) = self.legacy {
            let (text, malformed) = encoding.decode_without_bom_handling(bytes);
            if malformed {
                self.repairs.invalid += 1;
            } else {
                self.repairs.transcoded += 1;
            }
            return text.into_owned();
        }
        self.repairs.invalid += 1;
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Reads a base-128 varint off the front of `input`.
fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::{MESSAGES, encoding, put_varint, varint};

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut input = out.as_slice();
            assert_eq!(varint(&mut input), Some(value));
            assert!(input.is_empty());
        }
        assert_eq!(varint(&mut &[0x80u8, 0x80][..]), None, "truncated");
        assert_eq!(varint(&mut &[0xffu8; 11][..]), None, "too long");
    }

    #[test]
    fn the_field_table_knows_where_feed_text_is() {
        let find = |name: &str| {
            MESSAGES
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name}"))
                .1
        };
        // VehicleDescriptor: id (1), label (2), license_plate (3).
        let vehicle = find(".transit_realtime.VehicleDescriptor");
        for number in [1, 2, 3] {
            assert!(
                vehicle
                    .iter()
                    .any(|(n, f)| *n == number && matches!(f, super::Field::Text)),
                "{vehicle:?}"
            );
        }
        // TranslatedString.translation (1) is a nested message.
        let translated = find(".transit_realtime.TranslatedString");
        assert!(matches!(translated[0], (1, super::Field::Message(_))));
    }

    #[test]
    fn encodings_by_whatwg_label() {
        assert_eq!(encoding("shift_jis").unwrap().name(), "Shift_JIS");
        assert_eq!(encoding(" Latin1 ").unwrap().name(), "windows-1252");
        assert!(encoding("klingon").unwrap_err().contains("`klingon`"));
    }
}
