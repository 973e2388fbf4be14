//! Maintenance windows: when a customer's devices may install. A window opens on a
//! schedule read in its time zone (`0 0 2 * * Sat` in `Europe/Berlin`: Saturdays at
//! 02:00 Berlin time, summer or winter) and stays open for its duration; it covers
//! the customer's devices that carry all its labels (all of them when it names
//! none), and may cap how many of those install at once.
//!
//! A device no window covers installs when it is offered. A device some window
//! covers installs while one of them is open; outside, it downloads now and is told
//! when the next one opens.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::fleet::Labels;
use crate::domain::parse_duration;
use crate::domain::schedule::Schedule;

/// The most windows one customer has.
pub const MAX_WINDOWS: usize = 32;
/// The shortest and longest window.
pub const DURATION_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(7 * 86_400));
/// The largest cap on devices installing at once.
pub const MAX_CONCURRENT: u32 = 1_000_000;
/// At most this long after a window opens, a deferred device comes back: the
/// fleet's returns are spread over the window's first quarter, up to this.
pub const MAX_SPREAD: Duration = Duration::from_secs(15 * 60);

/// A window as the customer admin writes it (`PUT /api/v1/maintenance-windows`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowInput {
    /// Only devices carrying every one of these labels; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// When it opens: six cron fields, seconds first, as wall-clock time in `time_zone`.
    pub schedule: String,
    /// How long it stays open (`4h`).
    pub duration: String,
    /// An IANA time zone (`Europe/Berlin`, `UTC`).
    pub time_zone: String,
    /// At most this many of its devices install at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

/// A window, checked.
#[derive(Clone, Debug)]
pub struct Window {
    pub labels: Labels,
    pub schedule: Schedule,
    pub duration: Duration,
    pub time_zone: Tz,
    pub max_concurrent: Option<u32>,
}

impl Window {
    /// Checks one window; `at` names it in the message (`[2].time_zone`).
    pub fn parse(input: &WindowInput, at: usize) -> Result<Window, (String, String)> {
        let field = |name: &str| format!("[{at}].{name}");
        let labels = Labels::parse(input.labels.clone().unwrap_or_default()).map_err(|e| (field("labels"), e))?;
        let schedule = Schedule::parse(&input.schedule).map_err(|e| (field("schedule"), e))?;
        let duration = parse_duration(&input.duration).map_err(|e| (field("duration"), e))?;
        let (shortest, longest) = DURATION_RANGE;
        if duration < shortest || duration > longest {
            return Err((field("duration"), "must be from 1 minute to 7 days".into()));
        }
        let time_zone: Tz = input.time_zone.trim().parse().map_err(|_| {
            (
                field("time_zone"),
                format!(
                    "`{}` is not an IANA time zone (like `Europe/Berlin` or `UTC`)",
                    input.time_zone
                ),
            )
        })?;
        if let Some(cap) = input.max_concurrent {
            if cap == 0 || cap > MAX_CONCURRENT {
                return Err((field("max_concurrent"), format!("must be from 1 to {MAX_CONCURRENT}")));
            }
        }
        Ok(Window {
            labels,
            schedule,
            duration,
            time_zone,
            max_concurrent: input.max_concurrent,
        })
    }

    /// Whether the window covers a device carrying `labels`.
    pub fn covers(&self, labels: &Labels) -> bool {
        self.labels
            .iter()
            .all(|(name, value)| labels.as_map().get(name) == Some(value))
    }

    /// Whether the window names labels (it covers only some devices).
    pub fn by_label(&self) -> bool {
        !self.labels.as_map().is_empty()
    }

    fn length(&self) -> TimeDelta {
        TimeDelta::from_std(self.duration).unwrap_or(TimeDelta::MAX)
    }

    /// When the opening under way at `at` closes; `None` when the window is shut.
    pub fn open_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The openings strictly after `at - duration` that have begun by `at`.
        let since = at.with_timezone(&self.time_zone) - self.length();
        let start = self.schedule.next_after_in(&since)?.with_timezone(&Utc);
        (start <= at).then(|| start + self.length())
    }

    /// When the window next opens after `at`.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .next_after_in(&at.with_timezone(&self.time_zone))
            .map(|t| t.with_timezone(&Utc))
    }

    /// How long after an opening the devices it deferred come back, at most.
    pub fn spread(&self) -> Duration {
        (self.duration / 4).min(MAX_SPREAD)
    }
}

/// Checks a customer's windows: at most [`MAX_WINDOWS`].
pub fn parse_windows(inputs: &[WindowInput]) -> Result<Vec<Window>, (String, String)> {
    if inputs.len() > MAX_WINDOWS {
        return Err((
            "windows".into(),
            format!("a customer has at most {MAX_WINDOWS} windows"),
        ));
    }
    inputs.iter().enumerate().map(|(at, w)| Window::parse(w, at)).collect()
}

/// When a device may install what it is offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallTime {
    /// Now: no window covers it, or these of those that do are open (index, when
    /// it closes).
    Now { open: Vec<(usize, DateTime<Utc>)> },
    /// Not before `after`, when the first of its windows opens next (`window`).
    Deferred { after: DateTime<Utc>, window: usize },
    /// Windows cover it and none of them opens again.
    Never,
}

/// When a device covered by `windows` (index, window: those that cover it) may
/// install, at `at`.
pub fn install_time<'a>(windows: impl IntoIterator<Item = (usize, &'a Window)>, at: DateTime<Utc>) -> InstallTime {
    let mut open = Vec::new();
    let mut next: Option<(DateTime<Utc>, usize)> = None;
    let mut covered = false;
    for (index, window) in windows {
        covered = true;
        if let Some(until) = window.open_until(at) {
            open.push((index, until));
        } else if let Some(opening) = window.next_opening(at) {
            if next.is_none_or(|(earliest, _)| opening < earliest) {
                next = Some((opening, index));
            }
        }
    }
    match (covered, open.is_empty(), next) {
        (false, _, _) | (true, false, _) => InstallTime::Now { open },
        (true, true, Some((after, window))) => InstallTime::Deferred { after, window },
        (true, true, None) => InstallTime::Never,
    }
}

/// How long a deferred device waits before it asks again: until `after` plus
/// `offset` (its place in the window's spread), but never longer than `interval`,
/// its usual poll interval, and at least a second.
pub fn wait_for(at: DateTime<Utc>, after: DateTime<Utc>, offset: Duration, interval: Duration) -> Duration {
    let until = (after - at).to_std().unwrap_or_default() + offset;
    until.min(interval).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: &str, time_zone: &str, labels: &[(&str, &str)]) -> Window {
        let input = WindowInput {
            labels: Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()),
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: time_zone.into(),
            max_concurrent: None,
        };
        Window::parse(&input, 0).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_opens_on_its_schedule_in_its_time_zone_and_closes_after_its_duration() {
        // Saturdays 02:00 in Berlin for four hours: 01:00 UTC in winter, 00:00 in summer.
        let saturday = window("0 0 2 * * Sat", "4h", "Europe/Berlin", &[]);
        // Friday 2026-12-04 12:00 UTC: shut, next opens Saturday 01:00 UTC.
        let friday = utc("2026-12-04T12:00:00Z");
        assert_eq!(saturday.open_until(friday), None);
        assert_eq!(saturday.next_opening(friday), Some(utc("2026-12-05T01:00:00Z")));
        assert_eq!(
            saturday.open_until(utc("2026-12-05T01:00:00Z")),
            Some(utc("2026-12-05T05:00:00Z"))
        );
        assert_eq!(
            saturday.open_until(utc("2026-12-05T04:59:59Z")),
            Some(utc("2026-12-05T05:00:00Z"))
        );
        assert_eq!(saturday.open_until(utc("2026-12-05T05:00:00Z")), None);
        assert_eq!(saturday.open_until(utc("2026-12-05T00:59:59Z")), None);
        // In July Berlin is UTC+2.
        assert_eq!(
            saturday.next_opening(utc("2026-07-01T00:00:00Z")),
            Some(utc("2026-07-04T00:00:00Z"))
        );
    }

    #[test]
    fn a_device_installs_now_inside_a_window_is_deferred_outside_and_free_without_one() {
        let night = window("0 0 22 * * *", "6h", "UTC", &[]);
        let berlin = window("0 0 12 * * *", "1h", "Europe/Berlin", &[("site", "berlin")]);
        let labels: Labels = Labels::parse([("site".to_owned(), "berlin".to_owned())].into()).unwrap();
        let windows = [night, berlin];
        let covering = |labels: &Labels| {
            windows
                .iter()
                .enumerate()
                .filter(|(_, w)| w.covers(labels))
                .collect::<Vec<_>>()
        };
        // 10:00 UTC: the Berlin site's window opens at 11:00 UTC, the night window at 22:00.
        let at = utc("2026-12-07T10:00:00Z");
        assert_eq!(
            install_time(covering(&labels), at),
            InstallTime::Deferred {
                after: utc("2026-12-07T11:00:00Z"),
                window: 1
            }
        );
        assert_eq!(
            install_time(covering(&Labels::default()), at),
            InstallTime::Deferred {
                after: utc("2026-12-07T22:00:00Z"),
                window: 0
            }
        );
        // 11:30 UTC: Berlin's is open until 12:00 UTC.
        assert_eq!(
            install_time(covering(&labels), utc("2026-12-07T11:30:00Z")),
            InstallTime::Now {
                open: vec![(1, utc("2026-12-07T12:00:00Z"))]
            }
        );
        // 03:00 UTC: the night window that opened yesterday is open.
        assert_eq!(
            install_time(covering(&Labels::default()), utc("2026-12-08T03:00:00Z")),
            InstallTime::Now {
                open: vec![(0, utc("2026-12-08T04:00:00Z"))]
            }
        );
        assert_eq!(install_time(Vec::new(), at), InstallTime::Now { open: Vec::new() });
    }

    #[test]
    fn a_deferred_device_comes_back_when_its_window_opens_within_its_interval() {
        let at = utc("2026-12-07T10:00:00Z");
        let hour = Duration::from_secs(3600);
        assert_eq!(
            wait_for(at, utc("2026-12-07T10:05:00Z"), Duration::from_secs(30), hour),
            Duration::from_secs(330)
        );
        assert_eq!(wait_for(at, utc("2026-12-08T10:00:00Z"), Duration::ZERO, hour), hour);
        assert_eq!(
            wait_for(at, utc("2026-12-07T09:00:00Z"), Duration::ZERO, hour),
            Duration::from_secs(1)
        );
        let short = window("0 0 2 * * *", "20m", "UTC", &[]);
        assert_eq!(short.spread(), Duration::from_secs(300));
        assert_eq!(window("0 0 2 * * *", "8h", "UTC", &[]).spread(), MAX_SPREAD);
    }

    #[test]
    fn a_bad_window_is_refused_naming_its_field() {
        let good = WindowInput {
            labels: None,
            schedule: "0 0 2 * * Sat".into(),
            duration: "4h".into(),
            time_zone: "Europe/Berlin".into(),
            max_concurrent: Some(5),
        };
        assert!(parse_windows(std::slice::from_ref(&good)).is_ok());
        let bad = |change: &dyn Fn(&mut WindowInput)| {
            let mut input = good.clone();
            change(&mut input);
            parse_windows(&[good.clone(), input]).unwrap_err().0
        };
        assert_eq!(bad(&|w| w.time_zone = "Mars/Olympus".into()), "[1].time_zone");
        assert_eq!(bad(&|w| w.schedule = "0 0 25 * * *".into()), "[1].schedule");
        assert_eq!(bad(&|w| w.schedule = "nightly".into()), "[1].schedule");
        assert_eq!(bad(&|w| w.duration = "30s".into()), "[1].duration");
        assert_eq!(bad(&|w| w.duration = "8d".into()), "[1].duration");
        assert_eq!(bad(&|w| w.duration = "four hours".into()), "[1].duration");
        assert_eq!(bad(&|w| w.max_concurrent = Some(0)), "[1].max_concurrent");
        assert_eq!(
            bad(&|w| w.labels = Some([("bad name!".to_owned(), "x".to_owned())].into())),
            "[1].labels"
        );
        let many = vec![good.clone(); MAX_WINDOWS + 1];
        assert_eq!(parse_windows(&many).unwrap_err().0, "windows");
    }
}
