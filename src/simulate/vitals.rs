//! Daily measurement patterns and vital-sign values of one simulated person.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::population::{
    hour_of, schedule_for, Deterioration, DeteriorationKind, SimDevice, SimMessage, SimPatient,
    MICROS_PER_DAY,
};
use crate::domain::{Metric, Timestamp};

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// A person's usual values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Baseline {
    weight: f64,
    systolic: f64,
    diastolic: f64,
    heart_rate: f64,
    spo2: f64,
    temperature: f64,
    glucose: f64,
}

impl Baseline {
    pub(super) fn draw(
        rng: &mut ChaCha8Rng,
        copd: bool,
        hypertension: bool,
        diabetes: bool,
    ) -> Baseline {
        let systolic = if hypertension {
            rng.gen_range(138.0..158.0)
        } else {
            rng.gen_range(115.0..138.0)
        };
        Baseline {
            weight: rng.gen_range(52.0..98.0),
            systolic,
            diastolic: systolic * rng.gen_range(0.55..0.65),
            heart_rate: rng.gen_range(60.0..84.0),
            // COPD patients live in their prescribed 88–92% band.
            spo2: if copd {
                rng.gen_range(89.5..92.5)
            } else {
                rng.gen_range(94.5..98.0)
            },
            temperature: rng.gen_range(36.3..37.0),
            glucose: if diabetes {
                rng.gen_range(7.0..10.0)
            } else {
                rng.gen_range(5.0..6.5)
            },
        }
    }
}

/// When a spot-check device is used: minutes after midnight, with jitter.
pub(super) struct SpotSchedule {
    times: &'static [(u32, u32)],
    metrics: &'static [Metric],
}

impl SpotSchedule {
    pub(super) fn for_profile(profile: &str) -> SpotSchedule {
        match profile {
            // Morning and evening blood pressure, with pulse.
            "bp-monitor" => SpotSchedule {
                times: &[(8 * 60, 40), (20 * 60, 40)],
                metrics: &[Metric::BpSystolic, Metric::BpDiastolic, Metric::HeartRate],
            },
            // Pulse oximetry twice a day.
            "pulse-oximeter" => SpotSchedule {
                times: &[(9 * 60, 60), (17 * 60, 60)],
                metrics: &[Metric::Spo2, Metric::HeartRate],
            },
            "thermometer" => SpotSchedule {
                times: &[(8 * 60 + 30, 45)],
                metrics: &[Metric::BodyTemperature],
            },
            // Weight every morning, before breakfast.
            "weight-scale" => SpotSchedule {
                times: &[(7 * 60 + 30, 30)],
                metrics: &[Metric::BodyWeight],
            },
            "glucose-meter" => SpotSchedule {
                times: &[(7 * 60 + 45, 20), (18 * 60, 45)],
                metrics: &[Metric::BloodGlucose],
            },
            _ => SpotSchedule {
                times: &[],
                metrics: &[],
            },
        }
    }
}

/// The change a deterioration makes to a metric at full severity.
fn full_effect(kind: DeteriorationKind, metric: Metric) -> f64 {
    use DeteriorationKind::*;
    use Metric::*;
    match (kind, metric) {
        // Decompensation typically adds 2–3 kg over a few days.
        (HeartFailureFluid, BodyWeight) => 3.2,
        (HeartFailureFluid, HeartRate) => 8.0,
        (CopdExacerbation, Spo2) => -5.5,
        (CopdExacerbation, HeartRate) => 16.0,
        (Infection, BodyTemperature) => 2.1,
        (Infection, HeartRate) => 26.0,
        (Infection, Spo2) => -3.5,
        (Infection, BpSystolic) => -12.0,
        (Hypotension, BpSystolic) => -40.0,
        (Hypotension, BpDiastolic) => -16.0,
        (Hypotension, HeartRate) => 10.0,
        _ => 0.0,
    }
}

fn value(
    rng: &mut ChaCha8Rng,
    baseline: &Baseline,
    metric: Metric,
    ts: Timestamp,
    deteriorations: &[&Deterioration],
) -> f64 {
    let hour = hour_of(ts);
    let night = !(7..23).contains(&hour);
    let noise = |rng: &mut ChaCha8Rng, spread: f64| {
        rng.gen_range(-spread..spread) + rng.gen_range(-spread..spread) / 2.0
    };
    let base = match metric {
        Metric::BodyWeight => baseline.weight + noise(rng, 0.25),
        Metric::BpSystolic => baseline.systolic + noise(rng, 7.0),
        Metric::BpDiastolic => baseline.diastolic + noise(rng, 5.0),
        Metric::HeartRate => baseline.heart_rate + if night { -8.0 } else { 0.0 } + noise(rng, 4.0),
        Metric::Spo2 => baseline.spo2 + noise(rng, 0.8),
        Metric::BodyTemperature => {
            baseline.temperature + if hour >= 17 { 0.2 } else { 0.0 } + noise(rng, 0.15)
        }
        Metric::BloodGlucose => baseline.glucose + noise(rng, 1.2),
        Metric::SkinTemperature => baseline.temperature - 3.0 + noise(rng, 0.4),
        Metric::Steps => {
            if night {
                0.0
            } else if rng.gen_bool(0.3) {
                rng.gen_range(20.0..110.0)
            } else {
                rng.gen_range(0.0..8.0)
            }
        }
        Metric::RespiratoryRate => 16.0 + noise(rng, 2.0),
        // Nurse-entered, not simulated by devices: alert, on air.
        Metric::Consciousness | Metric::SupplementalOxygen => 0.0,
    };
    let effect: f64 = deteriorations
        .iter()
        .map(|d| d.severity(ts) * full_effect(d.kind, metric))
        .sum();
    let raw = base + effect;
    match metric {
        Metric::Spo2 => raw.round().clamp(70.0, 100.0),
        Metric::BpSystolic | Metric::BpDiastolic | Metric::HeartRate | Metric::Steps => {
            raw.round().max(0.0)
        }
        _ => (raw * 10.0).round() / 10.0,
    }
}

/// A value outside every profile's plausible range, as a faulty sensor sends.
fn implausible(metric: Metric) -> f64 {
    match metric {
        Metric::Spo2 => 12.0,
        Metric::BodyWeight => 0.4,
        Metric::BpSystolic => 390.0,
        Metric::BpDiastolic => 5.0,
        Metric::HeartRate => 2.0,
        Metric::BodyTemperature => 19.5,
        Metric::BloodGlucose => 0.1,
        _ => -1.0,
    }
}

/// Returns one device's messages for one day.
pub(super) fn device_day(
    rng: &mut ChaCha8Rng,
    patient: &SimPatient,
    device: &SimDevice,
    day_start: Timestamp,
    deteriorations: &[&Deterioration],
) -> Vec<SimMessage> {
    if device.profile == "wearable" {
        return wearable_day(rng, patient, device, day_start, deteriorations);
    }
    let schedule = schedule_for(device.profile);
    let mut messages = Vec::new();
    for &(minute, jitter) in schedule.times {
        let offset = i64::from(minute) + rng.gen_range(-i64::from(jitter)..=i64::from(jitter));
        let ts =
            day_start.plus_micros(offset * MICROS_PER_MINUTE + rng.gen_range(0..60) * 1_000_000);
        // Forgotten measurements.
        if rng.gen_bool(patient.forgetfulness) {
            continue;
        }
        let faulty = deteriorations.iter().any(|d| {
            d.kind == DeteriorationKind::DeviceFault
                && d.device_id.as_deref() == Some(device.device_id.as_str())
                && d.severity(ts) > 0.0
        });
        let readings = schedule
            .metrics
            .iter()
            .map(|&metric| {
                let value = if faulty && metric == schedule.metrics[0] {
                    implausible(metric)
                } else {
                    value(rng, &patient.baseline, metric, ts, deteriorations)
                };
                (metric, value, ts)
            })
            .collect();
        messages.push(SimMessage {
            upload_at: ts.plus_micros(rng.gen_range(2..60) * 1_000_000),
            device_id: device.device_id.clone(),
            format: device.format,
            readings,
            faulty,
        });
    }
    messages
}

/// A wrist wearable: heart rate and steps each minute while worn, SpO2 and
/// skin temperature every ten minutes, synced in blocks of 15 minutes.
fn wearable_day(
    rng: &mut ChaCha8Rng,
    patient: &SimPatient,
    device: &SimDevice,
    day_start: Timestamp,
    deteriorations: &[&Deterioration],
) -> Vec<SimMessage> {
    const BLOCK_MINUTES: i64 = 15;
    // Taken off for a shower or to charge for about an hour a day.
    let off_from = rng.gen_range(9 * 60..20 * 60);
    let mut messages = Vec::new();
    for block in 0..(MICROS_PER_DAY / (BLOCK_MINUTES * MICROS_PER_MINUTE)) {
        let mut readings = Vec::with_capacity(40);
        for minute_in_block in 0..BLOCK_MINUTES {
            let minute = block * BLOCK_MINUTES + minute_in_block;
            if (off_from..off_from + 60).contains(&minute) {
                continue;
            }
            let ts = day_start.plus_micros(minute * MICROS_PER_MINUTE);
            readings.push((
                Metric::HeartRate,
                value(
                    rng,
                    &patient.baseline,
                    Metric::HeartRate,
                    ts,
                    deteriorations,
                ),
                ts,
            ));
            readings.push((
                Metric::Steps,
                value(rng, &patient.baseline, Metric::Steps, ts, deteriorations),
                ts,
            ));
            if minute % 10 == 0 {
                readings.push((
                    Metric::Spo2,
                    value(rng, &patient.baseline, Metric::Spo2, ts, deteriorations),
                    ts,
                ));
                readings.push((
                    Metric::SkinTemperature,
                    value(
                        rng,
                        &patient.baseline,
                        Metric::SkinTemperature,
                        ts,
                        deteriorations,
                    ),
                    ts,
                ));
            }
        }
        if readings.is_empty() {
            continue;
        }
        let block_end = day_start.plus_micros((block + 1) * BLOCK_MINUTES * MICROS_PER_MINUTE);
        messages.push(SimMessage {
            upload_at: block_end.plus_micros(rng.gen_range(1..30) * 1_000_000),
            device_id: device.device_id.clone(),
            format: device.format,
            readings,
            faulty: false,
        });
    }
    messages
}
