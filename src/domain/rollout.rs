//! The rules of rollouts, without I/O: a plan of waves as the vendor writes it, which
//! devices a wave takes in, and when a wave has shown enough to advance or to stop.
//!
//! A wave's failures are judged on an interval, not on the rate alone: the rollout
//! pauses when even the lower end of the 95 % Wilson score interval of its failure
//! rate is above the error threshold, so a handful of early failures does not stop
//! it and a bad build cannot hide in a small sample. It advances when its success
//! threshold is met, at least `min_reports` devices (or all of a smaller wave) have
//! finished, and the failures it has seen are within the error threshold. In between
//! it waits for more reports.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::fleet::Labels;
use crate::domain::parse_duration;
use crate::domain::WaveGate;

/// The most waves one rollout has.
pub const MAX_WAVES: usize = 20;
/// The most devices a wave names one by one.
pub const MAX_NAMED_DEVICES: usize = 10_000;
/// The most customers a wave names.
pub const MAX_NAMED_CUSTOMERS: usize = 1_000;
/// The shortest and longest time a device may take to install before it counts as
/// failed.
pub const INSTALL_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(30 * 86_400));

/// A wave as the vendor writes it (`POST /api/v1/patches/{id}/rollouts`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WaveInput {
    /// The share of the devices the wave's filters match that it reaches, counting
    /// those earlier waves took (cumulative): 5, then 25, then 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Only devices carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// These devices (ids), whatever the filters say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// Only devices of these customers (slugs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<Vec<String>>,
    /// Percent of the wave's devices that must have installed before it advances.
    pub success_threshold: f64,
    /// Percent of failed installs the wave tolerates.
    pub error_threshold: f64,
    /// Finished installs needed before failures are judged.
    pub min_reports: u32,
    /// How long an offered device may take before it counts as failed (`2h`).
    pub install_timeout: String,
    #[serde(default = "auto")]
    pub gate: WaveGate,
}

fn auto() -> WaveGate {
    WaveGate::Auto
}

/// A wave, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Wave {
    pub percent: u8,
    pub labels: Labels,
    pub devices: Vec<String>,
    pub customers: Vec<String>,
    pub success_threshold: f64,
    pub error_threshold: f64,
    pub min_reports: u32,
    pub install_timeout: Duration,
    pub gate: WaveGate,
}

impl Wave {
    /// Checks one wave; `at` names it in the message (`waves[2].percent`).
    pub fn parse(input: &WaveInput, at: usize) -> Result<Wave, (String, String)> {
        let field = |name: &str| format!("waves[{at}].{name}");
        let percent = input.percent.unwrap_or(100);
        if !(1..=100).contains(&percent) {
            return Err((field("percent"), "must be from 1 to 100".into()));
        }
        let labels = Labels::parse(input.labels.clone().unwrap_or_default()).map_err(|e| (field("labels"), e))?;
        let devices = input.devices.clone().unwrap_or_default();
        if devices.len() > MAX_NAMED_DEVICES {
            return Err((field("devices"), format!("at most {MAX_NAMED_DEVICES} devices")));
        }
        let customers = input.customers.clone().unwrap_or_default();
        if customers.len() > MAX_NAMED_CUSTOMERS {
            return Err((field("customers"), format!("at most {MAX_NAMED_CUSTOMERS} customers")));
        }
        let threshold = |name: &str, value: f64| {
            if value.is_finite() && (0.0..=100.0).contains(&value) {
                Ok(value)
            } else {
                Err((field(name), format!("{value} is not a percentage from 0 to 100")))
            }
        };
        let success_threshold = threshold("success_threshold", input.success_threshold)?;
        let error_threshold = threshold("error_threshold", input.error_threshold)?;
        if input.min_reports == 0 {
            return Err((field("min_reports"), "must be at least 1".into()));
        }
        let install_timeout = parse_duration(&input.install_timeout).map_err(|e| (field("install_timeout"), e))?;
        let (shortest, longest) = INSTALL_TIMEOUT_RANGE;
        if install_timeout < shortest || install_timeout > longest {
            return Err((field("install_timeout"), "must be from 1 minute to 30 days".into()));
        }
        Ok(Wave {
            percent,
            labels,
            devices,
            customers,
            success_threshold,
            error_threshold,
            min_reports: input.min_reports,
            install_timeout,
            gate: input.gate,
        })
    }

    /// Whether a device of `customer` with `labels` passes the wave's filters (named
    /// devices aside).
    pub fn admits(&self, customer: &str, labels: &Labels) -> bool {
        (self.customers.is_empty() || self.customers.iter().any(|c| c == customer))
            && self
                .labels
                .iter()
                .all(|(name, value)| labels.as_map().get(name) == Some(value))
    }
}

/// Checks a plan: one to [`MAX_WAVES`] waves.
pub fn parse_plan(inputs: &[WaveInput]) -> Result<Vec<Wave>, (String, String)> {
    if inputs.is_empty() || inputs.len() > MAX_WAVES {
        return Err(("waves".into(), format!("a rollout has from 1 to {MAX_WAVES} waves")));
    }
    inputs.iter().enumerate().map(|(at, w)| Wave::parse(w, at)).collect()
}

/// A device a wave may take in.
#[derive(Clone, Debug)]
pub struct Applicable<'a> {
    pub device: &'a str,
    pub customer: &'a str,
    pub labels: &'a Labels,
    /// An earlier wave already took it.
    pub taken: bool,
}

/// Where a device falls in a rollout's order: the same for a device in one
/// rollout wherever it is computed, different between rollouts, so the first 5 %
/// are not the same devices every time.
pub fn rank(rollout: &str, device: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(rollout.as_bytes())
        .chain_update([0u8])
        .chain_update(device.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The devices (indexes into `devices`) that wave `position` of `waves` takes in
/// when it opens: those it names, and of those its filters admit, the first
/// `percent` in the rollout's order — counting the admitted devices earlier waves
/// already took.
pub fn open_wave(rollout: &str, waves: &[Wave], position: usize, devices: &[Applicable<'_>]) -> Vec<usize> {
    let wave = &waves[position];
    let mut taken: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.taken && wave.devices.iter().any(|named| named == d.device))
        .map(|(i, _)| i)
        .collect();
    let mut admitted: Vec<(u64, usize)> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| wave.admits(d.customer, d.labels))
        .map(|(i, d)| (rank(rollout, d.device), i))
        .collect();
    admitted.sort_unstable();
    let reach = (admitted.len() * usize::from(wave.percent)).div_ceil(100);
    let earlier = admitted.iter().filter(|(_, i)| devices[*i].taken).count();
    let wanted = reach.saturating_sub(earlier);
    let named: std::collections::HashSet<usize> = taken.iter().copied().collect();
    taken.extend(
        admitted
            .iter()
            .map(|(_, i)| *i)
            .filter(|i| !devices[*i].taken && !named.contains(i))
            .take(wanted),
    );
    taken.sort_unstable();
    taken.dedup();
    taken
}

/// Where the devices of a wave stand with the rollout's patch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveCounts {
    pub members: u64,
    /// Not offered the patch yet (they have not polled since the wave opened).
    pub waiting: u64,
    /// Offered, nothing reported yet.
    pub offered: u64,
    /// Downloading or installing, within the install timeout.
    pub in_progress: u64,
    pub installed: u64,
    /// Reported failed or rolled back.
    pub failed: u64,
    /// Offered longer than the install timeout without an end: counted as failed.
    pub timed_out: u64,
    /// Of customers that hold their devices back: not counted above, not judged.
    #[serde(default)]
    pub held: u64,
}

impl WaveCounts {
    /// Devices whose install ended: installed, failed or timed out.
    pub fn finished(&self) -> u64 {
        self.installed + self.failures()
    }

    pub fn failures(&self) -> u64 {
        self.failed + self.timed_out
    }
}

/// The 95 % Wilson score interval of a failure rate: `failures` of `reports`, as
/// fractions. `(0, 1)` with no reports.
pub fn failure_interval(failures: u64, reports: u64) -> (f64, f64) {
    if reports == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = reports as f64;
    let p = failures.min(reports) as f64 / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let margin = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - margin).max(0.0), (centre + margin).min(1.0))
}

/// What a running wave calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// More reports are needed either way.
    Wait,
    /// The failures are over the error threshold: pause, with why.
    Pause(String),
    /// The success threshold is met; a manual gate waits for an operator.
    Ready,
    /// The success threshold is met and the gate is automatic.
    Advance,
}

/// Judges a running wave by its counts.
pub fn judge(wave: &Wave, counts: &WaveCounts) -> Verdict {
    let finished = counts.finished();
    let failures = counts.failures();
    let sample = u64::from(wave.min_reports).min(counts.members.max(1));
    if finished >= sample && finished > 0 {
        let (lower, _) = failure_interval(failures, finished);
        if lower * 100.0 > wave.error_threshold {
            return Verdict::Pause(format!(
                "{failures} of {finished} installs failed ({:.1} %; at least {:.1} % at 95 % confidence), over the error threshold of {} %",
                failures as f64 * 100.0 / finished as f64,
                lower * 100.0,
                wave.error_threshold
            ));
        }
    }
    let succeeded = counts.members == 0
        || (counts.installed as f64 * 100.0 >= wave.success_threshold * counts.members as f64
            && finished >= sample
            && failures as f64 * 100.0 <= wave.error_threshold * finished as f64);
    match (succeeded, wave.gate) {
        (false, _) => Verdict::Wait,
        (true, WaveGate::Auto) => Verdict::Advance,
        (true, WaveGate::Manual) => Verdict::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(error: f64, min_reports: u32) -> Wave {
        Wave::parse(
            &WaveInput {
                percent: Some(10),
                labels: None,
                devices: None,
                customers: None,
                success_threshold: 90.0,
                error_threshold: error,
                min_reports,
                install_timeout: "2h".into(),
                gate: WaveGate::Auto,
            },
            0,
        )
        .unwrap()
    }

    fn counts(members: u64, installed: u64, failed: u64) -> WaveCounts {
        WaveCounts {
            members,
            installed,
            failed,
            waiting: members - installed - failed,
            ..WaveCounts::default()
        }
    }

    #[test]
    fn a_small_sample_does_not_trip_and_a_large_bad_one_does() {
        let w = wave(10.0, 20);
        // 5 reports, 1 failure: 20 %, but fewer than min_reports.
        assert_eq!(judge(&w, &counts(100, 4, 1)), Verdict::Wait);
        // The same five as a whole wave: judged, and 1 of 5 is no proof of 10 %.
        assert_eq!(judge(&w, &counts(5, 4, 1)), Verdict::Wait);
        // 40 reports, 10 failures: the interval's lower end is above 10 %.
        let (lower, upper) = failure_interval(10, 40);
        assert!(
            (0.14..0.15).contains(&lower) && (0.40..0.41).contains(&upper),
            "{lower} {upper}"
        );
        assert!(matches!(judge(&w, &counts(100, 30, 10)), Verdict::Pause(why) if why.contains("10 of 40")));
        // 20 reports, 3 failures: 15 %, but the lower end (5.2 %) is within 10 %: wait.
        assert_eq!(judge(&w, &counts(100, 17, 3)), Verdict::Wait);
    }

    #[test]
    fn a_wave_advances_on_its_success_threshold_and_a_manual_gate_waits() {
        let mut w = wave(10.0, 20);
        assert_eq!(judge(&w, &counts(100, 89, 0)), Verdict::Wait);
        assert_eq!(judge(&w, &counts(100, 90, 2)), Verdict::Advance);
        // A wave smaller than min_reports is judged when all of it has finished.
        assert_eq!(judge(&w, &counts(5, 5, 0)), Verdict::Advance);
        assert_eq!(judge(&w, &counts(0, 0, 0)), Verdict::Advance);
        w.gate = WaveGate::Manual;
        assert_eq!(judge(&w, &counts(100, 95, 0)), Verdict::Ready);
    }

    #[test]
    fn timeouts_count_as_failures() {
        let w = wave(10.0, 20);
        let stuck = WaveCounts {
            members: 50,
            installed: 30,
            timed_out: 20,
            ..WaveCounts::default()
        };
        assert!(matches!(judge(&w, &stuck), Verdict::Pause(_)));
    }

    #[test]
    fn waves_take_their_share_in_a_stable_order_counting_earlier_ones() {
        let labels = Labels::default();
        let ids: Vec<String> = (0..200).map(|i| format!("device-{i}")).collect();
        let mut fleet: Vec<Applicable<'_>> = ids
            .iter()
            .map(|id| Applicable {
                device: id,
                customer: "acme",
                labels: &labels,
                taken: false,
            })
            .collect();
        let mut first_input = wave(10.0, 20);
        first_input.percent = 10;
        let mut second = first_input.clone();
        second.percent = 50;
        let mut third = first_input.clone();
        third.percent = 100;
        let plan = vec![first_input, second, third];
        let first = open_wave("r1", &plan, 0, &fleet);
        assert_eq!(first.len(), 20);
        assert_eq!(first, open_wave("r1", &plan, 0, &fleet), "the same devices each time");
        assert_ne!(
            first,
            open_wave("r2", &plan, 0, &fleet),
            "another rollout, other devices"
        );
        for i in &first {
            fleet[*i].taken = true;
        }
        let next = open_wave("r1", &plan, 1, &fleet);
        assert_eq!(next.len(), 80, "50 % of 200, less the 20 already in");
        assert!(next.iter().all(|i| !first.contains(i)));
        for i in &next {
            fleet[*i].taken = true;
        }
        assert_eq!(open_wave("r1", &plan, 2, &fleet).len(), 100);
    }

    #[test]
    fn filters_and_named_devices_choose_who_a_wave_takes() {
        let canary = Labels::parse([("ring".to_owned(), "canary".to_owned())].into()).unwrap();
        let plain = Labels::default();
        let fleet = [
            Applicable {
                device: "a",
                customer: "acme",
                labels: &canary,
                taken: false,
            },
            Applicable {
                device: "b",
                customer: "acme",
                labels: &plain,
                taken: false,
            },
            Applicable {
                device: "c",
                customer: "globex",
                labels: &canary,
                taken: false,
            },
            Applicable {
                device: "d",
                customer: "globex",
                labels: &plain,
                taken: false,
            },
        ];
        let mut w = wave(10.0, 1);
        w.percent = 100;
        w.labels = canary.clone();
        w.customers = vec!["acme".into()];
        w.devices = vec!["d".into()];
        assert_eq!(open_wave("r", &[w], 0, &fleet), vec![0, 3]);
    }

    #[test]
    fn bad_waves_are_refused_naming_the_field() {
        let mut input = WaveInput {
            percent: Some(0),
            labels: None,
            devices: None,
            customers: None,
            success_threshold: 90.0,
            error_threshold: 5.0,
            min_reports: 10,
            install_timeout: "1h".into(),
            gate: WaveGate::Auto,
        };
        assert_eq!(Wave::parse(&input, 2).unwrap_err().0, "waves[2].percent");
        input.percent = Some(50);
        input.error_threshold = 120.0;
        assert_eq!(Wave::parse(&input, 0).unwrap_err().0, "waves[0].error_threshold");
        input.error_threshold = 5.0;
        input.install_timeout = "10s".into();
        assert_eq!(Wave::parse(&input, 0).unwrap_err().0, "waves[0].install_timeout");
        input.install_timeout = "1h".into();
        input.min_reports = 0;
        assert_eq!(Wave::parse(&input, 0).unwrap_err().0, "waves[0].min_reports");
        assert_eq!(parse_plan(&[]).unwrap_err().0, "waves");
    }
}
