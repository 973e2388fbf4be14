//! The one way a screen shows a moment: UTC to the second, then how long ago (or how
//! soon) it is as of the page's rendering — `2026-12-06 14:16:40 UTC (3 h 12 min ago)`.
//! Rendered on the server, so it is right without any script; templates apply it
//! with the `when` filter to whatever form of time the page was given.

use chrono::{DateTime, NaiveDateTime, Utc};

/// A span in seconds as a person reads it: `2 d 5 h`, `3 h 12 min`, `45 min`, `20 s`.
pub fn span_text(seconds: i64) -> String {
    match seconds.abs() {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `at` as every screen shows it, relative to `now`.
pub fn moment(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let absolute = at.format("%Y-%m-%d %H:%M:%S UTC");
    let seconds = (now - at).num_seconds();
    match seconds {
        -4..=4 => format!("{absolute} (now)"),
        s if s > 0 => format!("{absolute} ({} ago)", span_text(s)),
        s => format!("{absolute} (in {})", span_text(s)),
    }
}

/// Reads the forms of time pages are given: RFC 3339 (`2026-12-06T14:16:40.029Z`),
/// or a UTC wall-clock time with or without seconds (`2026-12-06 14:16:40`,
/// `2026-12-06 14:16 UTC`).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let bare = text.strip_suffix("UTC").unwrap_or(text).trim_end();
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(bare, format).ok())
        .map(|naive| naive.and_utc())
}

/// The `when` filter: a time as [`moment`] shows it now. A time the filter cannot
/// read is an error, so a page given one fails its tests rather than showing it raw.
pub fn filter(value: &tera::Value, _: &std::collections::HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let text = value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("`when` takes a time as text, not {value}")))?;
    let at = parse(text).ok_or_else(|| tera::Error::msg(format!("`when` cannot read `{text}` as a time")))?;
    Ok(tera::Value::String(moment(at, Utc::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse(text).unwrap()
    }

    #[test]
    fn every_form_pages_are_given_reads_as_the_same_moment() {
        let expected = at("2026-12-06T14:16:40Z");
        assert_eq!(at("2026-12-06T14:16:40.029506Z").timestamp(), expected.timestamp());
        assert_eq!(at("2026-12-06T15:16:40+01:00"), expected);
        assert_eq!(at("2026-12-06 14:16:40"), expected);
        assert_eq!(at("2026-12-06T14:16:40"), expected);
        assert_eq!(at("2026-12-06 14:16 UTC").timestamp(), expected.timestamp() - 40);
        assert!(parse("yesterday").is_none());
        assert!(parse("2026-13-06 14:16:40").is_none());
    }

    #[test]
    fn a_moment_is_utc_to_the_second_with_its_distance_from_now() {
        let now = at("2026-12-06T17:29:00Z");
        assert_eq!(
            moment(at("2026-12-06T14:16:40.9Z"), now),
            "2026-12-06 14:16:40 UTC (3 h 12 min ago)"
        );
        assert_eq!(
            moment(at("2026-12-09T00:00:00Z"), now),
            "2026-12-09 00:00:00 UTC (in 2 d 6 h)"
        );
        assert_eq!(moment(now, now), "2026-12-06 17:29:00 UTC (now)");
        assert_eq!(
            moment(at("2026-12-06T17:28:15Z"), now),
            "2026-12-06 17:28:15 UTC (45 s ago)"
        );
    }

    #[test]
    fn the_filter_refuses_what_is_not_a_time() {
        let args = std::collections::HashMap::new();
        assert!(filter(&tera::Value::String("soon".into()), &args).is_err());
        assert!(filter(&tera::Value::Null, &args).is_err());
        let shown = filter(&tera::Value::String("2026-12-06 14:16:40".into()), &args).unwrap();
        assert!(
            shown.as_str().unwrap().starts_with("2026-12-06 14:16:40 UTC ("),
            "{shown}"
        );
    }
}
