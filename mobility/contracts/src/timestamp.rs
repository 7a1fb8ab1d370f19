//! Date-times as the contracts carry them: RFC 3339, UTC with `Z`, whole
//! seconds (`2026-01-01T10:20:00Z`).
//!
//! chrono's own serialisation writes a fraction whenever the value has one;
//! consumers (and the schemas' examples) expect exactly whole seconds, so
//! the fraction is dropped on the way out. Reading accepts any RFC 3339
//! date-time and converts it to UTC.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `t` without its fraction of a second.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .expect("zero nanoseconds is always a valid time")
}

pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            serde::de::Error::custom(format_args!("invalid RFC 3339 date-time {text:?}: {e}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct At(#[serde(with = "super")] DateTime<Utc>);

    #[test]
    fn writes_whole_seconds_in_utc_with_z() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 10, 20, 0).unwrap()
            + chrono::Duration::milliseconds(789);
        assert_eq!(
            serde_json::to_string(&At(t)).unwrap(),
            r#""2026-01-01T10:20:00Z""#
        );
        assert_eq!(
            whole_seconds(t),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 20, 0).unwrap()
        );
    }

    #[test]
    fn reads_offsets_as_utc_and_rejects_other_text() {
        let At(t) = serde_json::from_str(r#""2026-01-01T12:20:00+02:00""#).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 1, 1, 10, 20, 0).unwrap());
        let err = serde_json::from_str::<At>(r#""yesterday""#).unwrap_err();
        assert!(err.to_string().contains("invalid RFC 3339"), "{err}");
    }
}
