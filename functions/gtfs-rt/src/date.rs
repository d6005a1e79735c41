//! UTC calendar dates of POSIX times, as GTFS and the tables spell them,
//! without a date crate (these run inside Wasm guests too).

/// The proleptic Gregorian (year, month, day) of POSIX time `secs`, UTC.
pub fn civil(secs: i64) -> (i64, u32, u32) {
    // Days since 1970-01-01, shifted to an era starting on 0000-03-01.
    let days = secs.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small positive numbers by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Days since 1970-01-01 (UTC) of POSIX time `secs`: a Delta `date`.
pub fn days(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

/// `YYYYMMDD`, the form of GTFS `start_date`.
pub fn yyyymmdd(secs: i64) -> String {
    let (year, month, day) = civil(secs);
    format!("{year:04}{month:02}{day:02}")
}

/// Latest plausible POSIX time (2100-01-01): later timestamps in a feed are
/// garbage that would make absurd partitions.
pub const MAX_SECONDS: u64 = 4_102_444_800;

/// Microseconds since the epoch (a Delta `timestamp`) of feed time `seconds`,
/// or why it is implausible; `field` names it in the error.
pub fn micros(seconds: u64, field: &str) -> Result<i64, String> {
    if seconds > MAX_SECONDS {
        return Err(format!("`{field}` {seconds} is after the year 2100"));
    }
    // Checked above: at most 4.1e15, far inside i64.
    Ok(i64::try_from(seconds).unwrap_or(0) * 1_000_000)
}

/// [`micros`] for the signed times GTFS uses in stop time events.
pub fn micros_signed(seconds: i64, field: &str) -> Result<i64, String> {
    match u64::try_from(seconds) {
        Ok(s) => micros(s, field),
        Err(_) => Err(format!("`{field}` {seconds} is before 1970")),
    }
}

#[cfg(test)]
mod tests {
    use super::{civil, days, micros, yyyymmdd};

    #[test]
    fn known_dates() {
        assert_eq!((days(0), civil(0)), (0, (1970, 1, 1)));
        assert_eq!(civil(1_699_405_559), (2023, 11, 8));
        assert_eq!(days(1_699_405_559), 19_669);
        assert_eq!(civil(951_782_400), (2000, 2, 29));
        assert_eq!((days(-1), civil(-1)), (-1, (1969, 12, 31)));
        assert_eq!(yyyymmdd(1_764_000_000), "20251124");
    }

    #[test]
    fn implausible_times_are_refused() {
        assert_eq!(micros(1, "t"), Ok(1_000_000));
        assert!(
            micros(99_999_999_999, "t")
                .unwrap_err()
                .contains("after the year 2100")
        );
    }
}
