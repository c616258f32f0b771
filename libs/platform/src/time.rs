//! Conversions between stored times (chrono, UTC) and `google.protobuf.Timestamp`.

use chrono::{DateTime, Utc};

/// The protobuf form of `time`.
pub fn to_timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        // Always below 10^9, so it fits.
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// `to_timestamp` for optional times.
pub fn to_timestamp_opt(time: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    time.map(to_timestamp)
}

/// The time a protobuf timestamp names; `None` when it is out of chrono's range or its nanos
/// are not normalised.
pub fn from_timestamp(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_nanos() {
        let now = Utc::now();
        assert_eq!(from_timestamp(&to_timestamp(now)), Some(now));
        assert_eq!(
            from_timestamp(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}
