//! The benchmark's records: 512-byte JSON internal events of a mobility
//! platform (the shape of `mobility/contracts`, flattened a little), with
//! personal fields for `redact` to work on and the time the driver sent
//! each one, in microseconds, for the latency measurement.

/// Every record's value is exactly this long.
pub const RECORD_BYTES: usize = 512;

/// Records are keyed by user; this many users.
const USERS: u64 = 64;

/// The field holding the send time. The chain of target (c) keeps it in
/// its public form (`data.sentAtUs`), so one search finds it in every
/// target's outputs.
const SENT_FIELD: &[u8] = b"\"sentAtUs\":";

/// The key of record `i`: its user.
pub fn key(i: u64) -> String {
    format!("user-{:05}", i % USERS)
}

/// The value of record `i`, sent at `sent_us` microseconds on the driver's
/// clock; exactly [`RECORD_BYTES`] long (a `note` field pads it).
pub fn value(i: u64, sent_us: u64) -> Vec<u8> {
    let user = i % USERS;
    let (event_type, mode) = if i.is_multiple_of(2) {
        ("TripStarted", "Bus")
    } else {
        ("TripEnded", "Train")
    };
    let (minute, second, milli) = ((i / 60_000) % 60, (i / 1000) % 60, i % 1000);
    let price = format!("{}.{:02}", 2 + i % 40, i % 100);
    let head = format!(
        concat!(
            r#"{{"eventId":"evt-{i:012}","type":"{event_type}","#,
            r#""occurredAt":"2026-12-01T08:{minute:02}:{second:02}.{milli:03}Z","#,
            r#""userId":"user-{user:05}","sentAtUs":{sent_us},"#,
            r#""payload":{{"tripId":"trip-{trip:010}","tripType":"{mode}","#,
            r#""firstName":"Ada","lastName":"Lovelace","#,
            r#""email":"ada.lovelace.{user}@example.com","phone":"+49151{phone:07}","#,
            r#""deviceId":"dev-{user:05}-7f3a9c","#,
            r#""from":"Alexanderplatz 1, 10178 Berlin","to":"Potsdamer Platz 5, 10785 Berlin","#,
            r#""price":{price},"note":""#
        ),
        i = i,
        event_type = event_type,
        minute = minute,
        second = second,
        milli = milli,
        user = user,
        sent_us = sent_us,
        trip = i / 2,
        mode = mode,
        phone = 1_000_000 + user * 7919,
        price = price,
    );
    const TAIL: &str = "\"}}";
    let pad = RECORD_BYTES
        .checked_sub(head.len() + TAIL.len())
        .expect("the record's fields fit in RECORD_BYTES");
    let mut value = head.into_bytes();
    value.resize(value.len() + pad, b'x');
    value.extend_from_slice(TAIL.as_bytes());
    value
}

/// The send time a record's value carries, in whichever form a target
/// wrote it.
pub fn sent_us(value: &[u8]) -> Option<u64> {
    let at = value
        .windows(SENT_FIELD.len())
        .position(|w| w == SENT_FIELD)?
        + SENT_FIELD.len();
    let digits = &value[at..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_512_bytes_of_json_with_their_send_time() {
        for (i, sent) in [
            (0, 0),
            (1, 7),
            (199_999, 1_234_567),
            (u64::MAX / 4, u64::MAX),
        ] {
            let v = value(i, sent);
            assert_eq!(v.len(), RECORD_BYTES, "record {i}");
            let json: serde_json::Value = serde_json::from_slice(&v).expect("valid JSON");
            assert_eq!(json["sentAtUs"].as_u64(), Some(sent));
            assert_eq!(sent_us(&v), Some(sent));
        }
    }

    #[test]
    fn the_send_time_is_found_in_a_projected_record() {
        let public = br#"{"specversion":"1.0","data":{"tripId":"t","sentAtUs":42}}"#;
        assert_eq!(sent_us(public), Some(42));
        assert_eq!(sent_us(b"{}"), None);
    }
}
