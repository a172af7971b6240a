//! Calendar fields of a ZooKeeper timestamp (milliseconds since the Unix epoch, UTC),
//! for the places that print one: the CLI's ISO times and the server's four-letter
//! words, which print dates as Java's `Date.toString` does.

/// A UTC instant split into calendar fields (proleptic Gregorian calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// The year (may be negative or above 9999 for absurd timestamps).
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
    /// 0..=999.
    pub millis: u32,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
}

impl Civil {
    /// Splits `ms` milliseconds since 1970-01-01T00:00:00Z. Total for every `i64`.
    pub fn from_epoch_ms(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm): eras of
        // 400 years starting on March 1st, so that the leap day ends a year.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Every value below is range-bound by the arithmetic above.
        let small = |v: i64| u32::try_from(v).unwrap_or(0);
        Civil {
            year,
            month: small(month),
            day: small(day),
            hour: small(sod / 3600),
            minute: small(sod % 3600 / 60),
            second: small(sod % 60),
            millis: small(ms.rem_euclid(1000)),
            // 1970-01-01 was a Thursday.
            weekday: small((days + 3).rem_euclid(7)),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// As Java's `Date.toString` prints it in UTC: `Mon Dec 07 02:58:47 UTC 2026`.
    pub fn java_date(&self) -> String {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        format!(
            "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
            DAYS[self.weekday as usize % 7],
            MONTHS[(self.month as usize).saturating_sub(1) % 12],
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(Civil::from_epoch_ms(0).iso8601(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Civil::from_epoch_ms(0).java_date(), "Thu Jan 01 00:00:00 UTC 1970");
        let t = Civil::from_epoch_ms(1_796_612_327_123);
        assert_eq!(t.iso8601(), "2026-12-07T02:58:47.123Z");
        assert_eq!(t.java_date(), "Mon Dec 07 02:58:47 UTC 2026");
        // A leap day, and an instant before the epoch.
        assert_eq!(Civil::from_epoch_ms(951_782_400_000).iso8601(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Civil::from_epoch_ms(-1).iso8601(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Civil::from_epoch_ms(-1).java_date(), "Wed Dec 31 23:59:59 UTC 1969");
    }

    #[test]
    fn total_for_every_i64() {
        for ms in [i64::MIN, i64::MIN + 1, -86_400_000, i64::MAX - 1, i64::MAX] {
            let c = Civil::from_epoch_ms(ms);
            assert!((1..=12).contains(&c.month) && (1..=31).contains(&c.day), "{c:?}");
            assert!(c.hour < 24 && c.minute < 60 && c.second < 60 && c.millis < 1000);
            assert!(c.weekday < 7);
        }
    }
}
