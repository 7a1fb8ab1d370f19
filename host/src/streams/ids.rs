//! Event ids of the streams API: UUIDs (version 8, RFC 9562) that encode
//! the event's offset in its stream's topic, so that any instance can find
//! an event by its id without an index. A stream tag in the id makes an id
//! of one stream unknown in another.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The id of the event at `offset` in `stream`.
pub fn encode(stream: &str, offset: i64) -> Uuid {
    let tag = Sha256::digest(stream.as_bytes());
    let mut bytes = [0u8; 16];
    // Bytes 0-7: the stream tag (`new_v8` overwrites the version nibble of
    // byte 6). Byte 8: the variant bits, and zero. Bytes 9-15: the offset
    // (56 bits).
    bytes[..8].copy_from_slice(&tag[..8]);
    bytes[8..].copy_from_slice(&(offset as u64 & 0x00ff_ffff_ffff_ffff).to_be_bytes());
    Uuid::new_v8(bytes)
}

/// The offset `id` stands for in `stream`; `None` when it is not an id of
/// that stream.
pub fn decode(stream: &str, id: &Uuid) -> Option<i64> {
    let bytes = id.as_bytes();
    let mut offset = [0u8; 8];
    offset[1..].copy_from_slice(&bytes[9..]);
    let offset = i64::from_be_bytes(offset);
    (encode(stream, offset) == *id).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_belong_to_their_stream() {
        for offset in [0, 1, 255, 1 << 40, (1 << 56) - 1] {
            let id = encode("orders", offset);
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(decode("orders", &id), Some(offset), "{id}");
            assert_eq!(decode("invoices", &id), None);
        }
        assert_ne!(encode("orders", 1), encode("orders", 2));
        assert_eq!(decode("orders", &Uuid::new_v8([7; 16])), None);
        assert_eq!(decode("orders", &Uuid::nil()), None);
    }
}
