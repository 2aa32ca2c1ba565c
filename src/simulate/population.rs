//! The simulated population: patients, devices, deteriorations, and the
//! messages of each simulated day.

use chrono::{TimeZone, Timelike, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use uuid::Uuid;

use super::vitals::{Baseline, SpotSchedule};
use crate::decode::PayloadFormat;
use crate::domain::{Metric, Timestamp};

/// The four MGZ regions of Drenthe, the natural teams for demos.
pub const DEMO_TEAMS: [&str; 4] = ["Assen", "Emmen", "Hoogeveen", "Meppel"];

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub(super) const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// One simulated person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimPatient {
    pub index: usize,
    pub id: Uuid,
    pub team: String,
    pub display_name: String,
    pub birth_year: i32,
    pub protocols: Vec<String>,
    pub devices: Vec<SimDevice>,
    #[serde(skip)]
    pub(super) baseline: Baseline,
    /// The gateway sometimes uploads hours late (poor connectivity).
    pub flaky_gateway: bool,
    /// How often this person forgets a scheduled measurement (0–1).
    pub forgetfulness: f64,
}

/// One simulated device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimDevice {
    pub device_id: String,
    pub profile: &'static str,
    #[serde(serialize_with = "format_name")]
    pub format: PayloadFormat,
}

fn format_name<S: serde::Serializer>(
    format: &PayloadFormat,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match format {
        PayloadFormat::ThuiswachtV1 => "thuiswacht_v1",
        PayloadFormat::SenMl => "senml",
        PayloadFormat::Fhir => "fhir",
    })
}

/// The kinds of deterioration the simulator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeteriorationKind {
    /// Heart failure: fluid retention, weight up ~0.8 kg a day for four days.
    HeartFailureFluid,
    /// COPD exacerbation: SpO2 down ~5 points, heart rate up, over two days.
    CopdExacerbation,
    /// Infection: fever, tachycardia, some desaturation and lower pressure.
    Infection,
    /// Hypotension (e.g. over-treatment or dehydration): systolic down ~35 mmHg.
    Hypotension,
    /// A device fault: one device sends implausible values.
    DeviceFault,
}

impl DeteriorationKind {
    pub const ALL: [DeteriorationKind; 5] = [
        DeteriorationKind::HeartFailureFluid,
        DeteriorationKind::CopdExacerbation,
        DeteriorationKind::Infection,
        DeteriorationKind::Hypotension,
        DeteriorationKind::DeviceFault,
    ];

    /// The metrics this deterioration changes.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            DeteriorationKind::HeartFailureFluid => &[Metric::BodyWeight, Metric::HeartRate],
            DeteriorationKind::CopdExacerbation => &[Metric::Spo2, Metric::HeartRate],
            DeteriorationKind::Infection => {
                &[Metric::BodyTemperature, Metric::HeartRate, Metric::Spo2]
            }
            DeteriorationKind::Hypotension => &[Metric::BpSystolic, Metric::BpDiastolic],
            DeteriorationKind::DeviceFault => &[],
        }
    }

    /// Hours from onset to full effect.
    fn ramp_hours(self) -> i64 {
        match self {
            DeteriorationKind::HeartFailureFluid => 96,
            DeteriorationKind::CopdExacerbation => 48,
            DeteriorationKind::Infection => 24,
            DeteriorationKind::Hypotension => 12,
            DeteriorationKind::DeviceFault => 0,
        }
    }

    /// Hours the full effect lasts before recovery begins (care would
    /// normally intervene long before).
    fn plateau_hours(self) -> i64 {
        match self {
            DeteriorationKind::DeviceFault => 48,
            _ => 72,
        }
    }
}

/// One injected deterioration: the record triage is scored against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deterioration {
    pub patient_id: Uuid,
    pub patient_index: usize,
    pub display_name: String,
    pub team: String,
    pub kind: DeteriorationKind,
    /// When it starts.
    pub onset: Timestamp,
    /// When it reaches full effect.
    pub peak: Timestamp,
    /// When it has fully recovered.
    pub end: Timestamp,
    /// The metrics it changes.
    pub metrics: Vec<Metric>,
    /// For a device fault: the faulty device.
    pub device_id: Option<String>,
}

impl Deterioration {
    /// Returns the share (0–1) of the full effect at `ts`.
    pub fn severity(&self, ts: Timestamp) -> f64 {
        if ts < self.onset || ts >= self.end {
            return 0.0;
        }
        if ts < self.peak {
            return (ts.micros() - self.onset.micros()) as f64
                / (self.peak.micros() - self.onset.micros()).max(1) as f64;
        }
        let recovery_start = self.end.micros() - 24 * MICROS_PER_HOUR;
        if ts.micros() < recovery_start {
            1.0
        } else {
            (self.end.micros() - ts.micros()) as f64 / (24 * MICROS_PER_HOUR) as f64
        }
    }
}

/// One message as a device (or its gateway) sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    /// When the gateway uploads it (later than the readings when the gateway was offline).
    pub upload_at: Timestamp,
    pub device_id: String,
    pub format: PayloadFormat,
    /// (metric, value in canonical unit, event time)
    pub readings: Vec<(Metric, f64, Timestamp)>,
    /// The device fault sends values outside the plausible range; these are
    /// expected in the quarantine, not in the readings table.
    pub faulty: bool,
}

/// A whole simulated population.
#[derive(Debug, Clone)]
pub struct Population {
    pub seed: u64,
    pub patients: Vec<SimPatient>,
    pub deteriorations: Vec<Deterioration>,
    /// First simulated instant (midnight UTC).
    pub start: Timestamp,
    /// Number of simulated days.
    pub days: u32,
}

/// SplitMix64, to derive independent seeds from (seed, patient, day).
pub(super) fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

const FIRST_NAMES: [&str; 16] = [
    "Jan",
    "Geert",
    "Hendrik",
    "Albert",
    "Roelof",
    "Klaas",
    "Harm",
    "Jacob",
    "Aaltje",
    "Geesje",
    "Hillechien",
    "Jantje",
    "Grietje",
    "Roelfien",
    "Trijntje",
    "Zwaantje",
];
const LAST_INITIALS: &str = "BDHKMPSTVWZ";

impl Population {
    /// Draws a population of `patients` people, simulated over `days` days
    /// ending at `end` (rounded up to midnight UTC).
    pub fn generate(seed: u64, patients: usize, days: u32, end: Timestamp) -> Population {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed));
        let end_day = end.micros().div_euclid(MICROS_PER_DAY) + 1;
        let start = Timestamp((end_day - i64::from(days)) * MICROS_PER_DAY);
        let mut population = Population {
            seed,
            patients: Vec::with_capacity(patients),
            deteriorations: Vec::new(),
            start,
            days,
        };
        for index in 0..patients {
            let patient = draw_patient(&mut rng, seed, index);
            if let Some(deterioration) = draw_deterioration(&mut rng, &patient, start, days) {
                population.deteriorations.push(deterioration);
            }
            population.patients.push(patient);
        }
        population
    }

    /// Returns the messages of simulated day `day` (0-based), in the order of
    /// their event time. Deterministic: the same population and day always
    /// give the same messages.
    pub fn day(&self, day: u32) -> Vec<SimMessage> {
        let mut messages = Vec::new();
        for patient in &self.patients {
            messages.extend(self.patient_day(patient.index, day));
        }
        messages.sort_by(|a, b| {
            a.readings[0]
                .2
                .cmp(&b.readings[0].2)
                .then_with(|| a.device_id.cmp(&b.device_id))
        });
        messages
    }

    /// Returns the messages of one patient's simulated day `day`, device by
    /// device; [`day`](Self::day) is these for every patient, sorted. Lets a
    /// large population be produced patient by patient.
    pub fn patient_day(&self, patient_index: usize, day: u32) -> Vec<SimMessage> {
        let patient = &self.patients[patient_index];
        let day_start = self.day_start(day);
        let mut rng = self.day_rng(patient, day);
        // Drawn in patient order, so a patient's deteriorations are adjacent.
        let first = self
            .deteriorations
            .partition_point(|d| d.patient_index < patient.index);
        let deteriorations: Vec<&Deterioration> = self.deteriorations[first..]
            .iter()
            .take_while(|d| d.patient_index == patient.index)
            .collect();
        let mut outages: Vec<(Timestamp, Timestamp)> = short_outage(&mut rng, patient, day_start)
            .into_iter()
            .collect();
        outages.extend(self.long_outages(patient, day));
        let mut messages = Vec::new();
        for device in &patient.devices {
            let mut device_messages =
                super::vitals::device_day(&mut rng, patient, device, day_start, &deteriorations);
            for message in &mut device_messages {
                for &(from, back) in &outages {
                    if message.upload_at >= from && message.upload_at < back {
                        message.upload_at = back;
                    }
                }
            }
            messages.extend(device_messages);
        }
        messages
    }

    /// Returns the patient with this index.
    pub fn patient(&self, index: usize) -> &SimPatient {
        &self.patients[index]
    }

    /// Returns the generator of a patient's simulated day: the same
    /// (seed, patient, day) always gives the same draws.
    pub(super) fn day_rng(&self, patient: &SimPatient, day: u32) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(self.seed
            ^ mix(patient.index as u64)
            ^ mix(u64::from(day) << 32)))
    }

    /// Returns the start of simulated day `day`.
    pub(super) fn day_start(&self, day: u32) -> Timestamp {
        self.start.plus_micros(i64::from(day) * MICROS_PER_DAY)
    }

    /// Returns the times (from, back) a patient's gateway is offline that
    /// touch simulated day `day`: the day's short outage, and long outages
    /// (a router unplugged for a day or more) that reach into it. While offline nothing arrives; at `back` the gateway
    /// uploads what it buffered: a late upload.
    pub(super) fn outages(&self, patient: &SimPatient, day: u32) -> Vec<(Timestamp, Timestamp)> {
        let mut rng = self.day_rng(patient, day);
        let mut outages: Vec<(Timestamp, Timestamp)> =
            short_outage(&mut rng, patient, self.day_start(day))
                .into_iter()
                .collect();
        outages.extend(self.long_outages(patient, day));
        outages
    }

    /// Long outages of a flaky gateway that may reach into `day`: they begin
    /// in the first half of a day and last 26–40 hours, so those that began
    /// up to two days before. Drawn from their own generator, so they do not
    /// change any reading's value.
    fn long_outages(&self, patient: &SimPatient, day: u32) -> Vec<(Timestamp, Timestamp)> {
        const LONG_OUTAGE_SALT: u64 = 0x4F55_5441_4745;
        let mut outages = Vec::new();
        for began in day.saturating_sub(2)..=day {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed
                ^ mix(patient.index as u64)
                ^ mix(u64::from(began) << 32)
                ^ LONG_OUTAGE_SALT));
            if patient.flaky_gateway && rng.gen_bool(0.06) {
                let from = self
                    .day_start(began)
                    .plus_micros(rng.gen_range(0..12) * MICROS_PER_HOUR);
                let back = from.plus_micros(rng.gen_range(26..40) * MICROS_PER_HOUR);
                outages.push((from, back));
            }
        }
        outages
    }
}

/// A flaky gateway is offline for part of one day in five: the first draws
/// of the patient's day generator.
fn short_outage(
    rng: &mut ChaCha8Rng,
    patient: &SimPatient,
    day_start: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    if patient.flaky_gateway && rng.gen_bool(0.2) {
        let from_hour: i64 = rng.gen_range(6..14);
        let hours: i64 = rng.gen_range(2..9);
        let from = day_start.plus_micros(from_hour * MICROS_PER_HOUR);
        Some((from, from.plus_micros(hours * MICROS_PER_HOUR)))
    } else {
        None
    }
}

fn draw_patient(rng: &mut ChaCha8Rng, seed: u64, index: usize) -> SimPatient {
    let team = DEMO_TEAMS[index % DEMO_TEAMS.len()].to_owned();
    let first = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
    let initial = LAST_INITIALS.as_bytes()[rng.gen_range(0..LAST_INITIALS.len())] as char;
    let birth_year = rng.gen_range(1928..=1948);
    let id = Uuid::from_u64_pair(mix(seed ^ 0x5448_5549), mix(index as u64 ^ seed));
    let heart_failure = rng.gen_bool(0.30);
    let copd = rng.gen_bool(0.22);
    let hypertension = rng.gen_bool(0.45);
    let diabetes = rng.gen_bool(0.20);
    let mut protocols = vec!["default".to_owned()];
    for (has, protocol) in [
        (heart_failure, "heart-failure"),
        (copd, "copd"),
        (hypertension, "hypertension"),
        (diabetes, "diabetes"),
    ] {
        if has {
            protocols.push(protocol.to_owned());
        }
    }
    let baseline = Baseline::draw(rng, copd, hypertension, diabetes);
    let mut profiles = vec!["bp-monitor", "pulse-oximeter", "thermometer"];
    if heart_failure || rng.gen_bool(0.3) {
        profiles.push("weight-scale");
    }
    if diabetes {
        profiles.push("glucose-meter");
    }
    if rng.gen_bool(0.2) {
        profiles.push("wearable");
    }
    let devices = profiles
        .into_iter()
        .map(|profile| {
            let short = match profile {
                "bp-monitor" => "bpm",
                "pulse-oximeter" => "ox",
                "thermometer" => "thermo",
                "weight-scale" => "scale",
                "glucose-meter" => "gluco",
                _ => "wear",
            };
            // Wearables sync through the vendor's gateway (v1); home devices vary.
            let format = if profile == "wearable" {
                PayloadFormat::ThuiswachtV1
            } else {
                match rng.gen_range(0..100) {
                    0..=59 => PayloadFormat::ThuiswachtV1,
                    60..=84 => PayloadFormat::SenMl,
                    _ => PayloadFormat::Fhir,
                }
            };
            SimDevice {
                device_id: format!("sim{seed}-{short}-{index:05}"),
                profile,
                format,
            }
        })
        .collect();
    SimPatient {
        index,
        id,
        team,
        display_name: format!("{first} {initial}. ({index})"),
        birth_year,
        protocols,
        devices,
        baseline,
        flaky_gateway: rng.gen_bool(0.15),
        forgetfulness: rng.gen_range(0.02..0.15),
    }
}

fn draw_deterioration(
    rng: &mut ChaCha8Rng,
    patient: &SimPatient,
    start: Timestamp,
    days: u32,
) -> Option<Deterioration> {
    if days < 3 || !rng.gen_bool(0.35) {
        return None;
    }
    let has = |protocol: &str| patient.protocols.iter().any(|p| p == protocol);
    let mut kinds = vec![DeteriorationKind::Infection, DeteriorationKind::DeviceFault];
    if has("heart-failure") && patient.devices.iter().any(|d| d.profile == "weight-scale") {
        kinds.extend([DeteriorationKind::HeartFailureFluid; 2]);
    }
    if has("copd") {
        kinds.extend([DeteriorationKind::CopdExacerbation; 2]);
    }
    kinds.push(DeteriorationKind::Hypotension);
    let kind = kinds[rng.gen_range(0..kinds.len())];
    // Onset in the second half of the window, so a personal baseline exists.
    let first_day = i64::from(days / 2);
    let onset_day = rng.gen_range(first_day..i64::from(days) - 1);
    let onset =
        start.plus_micros(onset_day * MICROS_PER_DAY + rng.gen_range(0..24) * MICROS_PER_HOUR);
    let peak = onset.plus_micros(kind.ramp_hours() * MICROS_PER_HOUR);
    let end = peak.plus_micros((kind.plateau_hours() + 24) * MICROS_PER_HOUR);
    let device_id = (kind == DeteriorationKind::DeviceFault).then(|| {
        let spot: Vec<&SimDevice> = patient
            .devices
            .iter()
            .filter(|d| d.profile != "wearable")
            .collect();
        spot[rng.gen_range(0..spot.len())].device_id.clone()
    });
    Some(Deterioration {
        patient_id: patient.id,
        patient_index: patient.index,
        display_name: patient.display_name.clone(),
        team: patient.team.clone(),
        kind,
        onset,
        peak,
        end,
        metrics: kind.metrics().to_vec(),
        device_id,
    })
}

/// Returns the UTC hour of day and minute of `ts` (the simulation treats UTC
/// as local time; schedules are in whole days).
pub(super) fn hour_of(ts: Timestamp) -> u32 {
    Utc.timestamp_micros(ts.micros())
        .single()
        .map(|t| t.hour())
        .unwrap_or(0)
}

pub(super) fn schedule_for(profile: &str) -> SpotSchedule {
    SpotSchedule::for_profile(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_population_and_readings() {
        let end = Timestamp(1_763_800_000_000_000);
        let a = Population::generate(7, 40, 10, end);
        let b = Population::generate(7, 40, 10, end);
        assert_eq!(a.patients, b.patients);
        assert_eq!(a.deteriorations, b.deteriorations);
        assert_eq!(a.day(6), b.day(6));
        let c = Population::generate(8, 40, 10, end);
        assert_ne!(a.day(6), c.day(6));
    }

    #[test]
    fn days_can_be_drawn_in_any_order() {
        let population = Population::generate(3, 10, 5, Timestamp(1_763_800_000_000_000));
        let forward: Vec<_> = (0..5).map(|d| population.day(d)).collect();
        let backward: Vec<_> = (0..5).rev().map(|d| population.day(d)).collect();
        assert_eq!(forward[1], backward[3]);
    }

    #[test]
    fn every_kind_of_deterioration_occurs_in_a_large_population() {
        let population = Population::generate(11, 500, 30, Timestamp(1_763_800_000_000_000));
        for kind in DeteriorationKind::ALL {
            let count = population
                .deteriorations
                .iter()
                .filter(|d| d.kind == kind)
                .count();
            assert!(count >= 5, "{kind:?} injected {count} times");
        }
        for deterioration in &population.deteriorations {
            assert!(deterioration.onset >= population.start);
            assert!(
                deterioration.peak >= deterioration.onset && deterioration.end > deterioration.peak
            );
        }
    }

    #[test]
    fn severity_ramps_up_holds_and_recovers() {
        let d = Deterioration {
            patient_id: Uuid::nil(),
            patient_index: 0,
            display_name: String::new(),
            team: String::new(),
            kind: DeteriorationKind::Infection,
            onset: Timestamp(0),
            peak: Timestamp(10 * MICROS_PER_HOUR),
            end: Timestamp(100 * MICROS_PER_HOUR),
            metrics: vec![],
            device_id: None,
        };
        assert_eq!(d.severity(Timestamp(-1)), 0.0);
        assert!((d.severity(Timestamp(5 * MICROS_PER_HOUR)) - 0.5).abs() < 1e-9);
        assert_eq!(d.severity(Timestamp(50 * MICROS_PER_HOUR)), 1.0);
        assert!((d.severity(Timestamp(88 * MICROS_PER_HOUR)) - 0.5).abs() < 1e-9);
        assert_eq!(d.severity(Timestamp(100 * MICROS_PER_HOUR)), 0.0);
    }
}
