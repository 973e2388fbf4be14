//! Pull schedules: cron expressions of six fields, seconds first
//! (`0 */15 * * * *` is every fifteen minutes), checked field by field so that a
//! bad one is named.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDateTime, Utc};

/// The six fields, in order.
pub const FIELDS: [&str; 6] = ["seconds", "minutes", "hours", "day of month", "month", "day of week"];

/// A checked pull schedule.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: cron::Schedule,
}

impl Schedule {
    /// Parses `text`; an error names the field at fault.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(format!(
                "`{text}` has {} fields; a schedule has six, seconds first, like `0 */15 * * * *`",
                fields.len()
            ));
        }
        for (i, field) in fields.iter().enumerate() {
            let mut probe = ["*"; 6];
            // Day of month and day of week are checked on their own; the others need a
            // fixed second so that `*` elsewhere is not the problem.
            probe[0] = "0";
            probe[i] = field;
            if let Err(err) = cron::Schedule::from_str(&probe.join(" ")) {
                return Err(format!("the {} field `{field}` is not valid: {err}", FIELDS[i]));
            }
        }
        let normal = fields.join(" ");
        let cron = cron::Schedule::from_str(&normal).map_err(|err| format!("`{text}` is not a schedule: {err}"))?;
        if cron.after(&Utc::now()).next().is_none() {
            return Err(format!("`{text}` never fires"));
        }
        Ok(Schedule { text: normal, cron })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time the schedule fires strictly after `at`.
    pub fn next_after(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron.after(&at.and_utc()).next().map(|t| t.naive_utc())
    }

    /// The first time the schedule fires strictly after `at`, its fields read as
    /// wall-clock time in `at`'s time zone.
    pub fn next_after_in<Z: chrono::TimeZone>(&self, at: &chrono::DateTime<Z>) -> Option<chrono::DateTime<Z>> {
        self.cron.after(at).next()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({})", self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn six_fields_seconds_first() {
        let every_quarter = Schedule::parse("0 */15 * * * *").unwrap();
        assert_eq!(
            every_quarter.next_after(at("2026-11-28 10:07:30")),
            Some(at("2026-11-28 10:15:00"))
        );
        assert_eq!(
            every_quarter.next_after(at("2026-11-28 10:15:00")),
            Some(at("2026-11-28 10:30:00"))
        );
        let every_five_seconds = Schedule::parse(" */5  * * * * * ").unwrap();
        assert_eq!(every_five_seconds.as_str(), "*/5 * * * * *");
        assert_eq!(
            every_five_seconds.next_after(at("2026-11-28 10:00:01")),
            Some(at("2026-11-28 10:00:05"))
        );
    }

    #[test]
    fn a_bad_schedule_names_its_field() {
        let five = Schedule::parse("*/15 * * * *").unwrap_err();
        assert!(five.contains("5 fields"), "{five}");
        let minutes = Schedule::parse("0 */61 * * * *").unwrap_err();
        assert!(minutes.contains("minutes field `*/61`"), "{minutes}");
        let hours = Schedule::parse("0 0 25 * * *").unwrap_err();
        assert!(hours.contains("hours field `25`"), "{hours}");
        let weekday = Schedule::parse("0 0 0 * * Funday").unwrap_err();
        assert!(weekday.contains("day of week field"), "{weekday}");
        let month = Schedule::parse("0 0 0 1 13 *").unwrap_err();
        assert!(month.contains("month field `13`"), "{month}");
    }
}
