//! Simulated device statuses: every device's gateway sends a heartbeat with
//! the battery level every six hours, and a fault code while the device is
//! faulty (the `device_fault` deterioration).
//!
//! - Battery: a spot-check device's batteries drain over 60–180 days. Most
//!   households replace them at about a quarter left; one device in four
//!   runs down to 8 %, so it spends a while below the 20 % warning level
//!   (a `battery_low` alert that resolves itself once they are replaced). A
//!   wearable is charged daily and never runs low.
//! - Outages: while the patient's gateway is offline nothing is sent, and it
//!   sends a heartbeat when it is back (see `Population::outages`), so a
//!   long outage over a due time makes the device silent.
//!
//! Drawn from their own generators, so adding statuses changed no reading.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::population::{mix, MICROS_PER_DAY};
use super::{DeteriorationKind, Population, SimDevice, SimPatient};
use crate::domain::Timestamp;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Hours between heartbeats.
const HEARTBEAT_HOURS: i64 = 6;

/// The fault code a faulty simulated device reports.
pub const SIMULATED_FAULT: &str = "E-SENSOR";

/// One status message as a gateway sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimStatus {
    pub upload_at: Timestamp,
    pub device_id: String,
    /// The device's time of the status.
    pub ts: Timestamp,
    pub battery_pct: f64,
    pub fault: Option<&'static str>,
}

impl Population {
    /// Returns the status messages of simulated day `day`, in upload order.
    pub fn statuses(&self, day: u32) -> Vec<SimStatus> {
        let day_start = self.day_start(day);
        let mut statuses = Vec::new();
        for patient in &self.patients {
            let outages = self.outages(patient, day);
            let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed
                ^ mix(patient.index as u64)
                ^ mix(u64::from(day) << 32)
                ^ 0x5354_4154_5553));
            for (position, device) in patient.devices.iter().enumerate() {
                let offline = |ts: &Timestamp| {
                    outages
                        .iter()
                        .any(|&(from, back)| *ts >= from && *ts < back)
                };
                let beats = (0..24 / HEARTBEAT_HOURS).map(|beat| {
                    day_start.plus_micros(
                        (1 + beat * HEARTBEAT_HOURS) * MICROS_PER_HOUR
                            + rng.gen_range(0..20 * 60) * 1_000_000,
                    )
                });
                // Back online (and not inside another outage): the gateway reports at once.
                let returns = outages.iter().map(|&(_, back)| back).filter(|back| {
                    *back >= day_start && back.micros() < day_start.micros() + MICROS_PER_DAY
                });
                let times: Vec<Timestamp> =
                    beats.chain(returns).filter(|ts| !offline(ts)).collect();
                for ts in times {
                    statuses.push(SimStatus {
                        upload_at: ts.plus_micros(rng.gen_range(1..10) * 1_000_000),
                        device_id: device.device_id.clone(),
                        ts,
                        battery_pct: self.battery(patient, position, device, ts),
                        fault: self.faulty(patient, device, ts).then_some(SIMULATED_FAULT),
                    });
                }
            }
        }
        statuses.sort_by(|a, b| {
            a.upload_at
                .cmp(&b.upload_at)
                .then_with(|| a.device_id.cmp(&b.device_id))
        });
        statuses
    }

    /// Returns a device's battery level at `ts`, in whole percent.
    fn battery(
        &self,
        patient: &SimPatient,
        position: usize,
        device: &SimDevice,
        ts: Timestamp,
    ) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed
            ^ mix(patient.index as u64)
            ^ mix(position as u64 + 0x4241_5454)));
        let hours = ts.micros().div_euclid(MICROS_PER_HOUR) as f64;
        if device.profile == "wearable" {
            // Charged each day: 100 % down to about 45 %.
            return (100.0 - 55.0 * (hours.rem_euclid(24.0) / 24.0)).round();
        }
        let life_hours = rng.gen_range(60.0..180.0) * 24.0;
        let phase = rng.gen_range(0.0..life_hours);
        let replaced_at = if rng.gen_bool(0.25) { 8.0 } else { 25.0 };
        let used = ((hours + phase) % life_hours) / life_hours;
        // Drains linearly from 100 % to the level at which it is replaced.
        (100.0 - (100.0 - replaced_at) * used).round()
    }

    fn faulty(&self, patient: &SimPatient, device: &SimDevice, ts: Timestamp) -> bool {
        self.deteriorations.iter().any(|d| {
            d.patient_index == patient.index
                && d.kind == DeteriorationKind::DeviceFault
                && d.device_id.as_deref() == Some(device.device_id.as_str())
                && d.severity(ts) > 0.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: Timestamp = Timestamp(1_763_800_000_000_000);

    #[test]
    fn statuses_are_reproducible_and_cover_every_device() {
        let population = Population::generate(5, 30, 20, END);
        assert_eq!(population.statuses(7), population.statuses(7));
        let devices: usize = population.patients.iter().map(|p| p.devices.len()).sum();
        let day = population.statuses(7);
        assert!(
            day.len() >= devices * 3,
            "{} statuses for {devices} devices",
            day.len()
        );
        assert!(day.windows(2).all(|w| w[0].upload_at <= w[1].upload_at));
    }

    #[test]
    fn some_batteries_run_low_and_come_back_and_faulty_devices_say_so() {
        // Arrange
        let population = Population::generate(9, 60, 40, END);
        let statuses: Vec<SimStatus> = (0..40).flat_map(|day| population.statuses(day)).collect();
        // Assert: some devices run low, and a low device is later full again.
        let low: Vec<&SimStatus> = statuses.iter().filter(|s| s.battery_pct < 20.0).collect();
        assert!(!low.is_empty());
        let share = low.len() as f64 / statuses.len() as f64;
        assert!(share < 0.1, "{share:.3} of statuses report a low battery");
        assert!(low.iter().any(|l| statuses
            .iter()
            .any(|s| s.device_id == l.device_id && s.ts > l.ts && s.battery_pct >= 90.0)));
        assert!(statuses
            .iter()
            .all(|s| (0.0..=100.0).contains(&s.battery_pct)));
        let fault = population
            .deteriorations
            .iter()
            .find(|d| d.kind == DeteriorationKind::DeviceFault && d.end < population.day_start(40))
            .expect("the population has a device fault");
        let device = fault.device_id.as_deref().unwrap();
        assert!(statuses
            .iter()
            .any(|s| s.device_id == device && s.fault == Some(SIMULATED_FAULT)));
        assert!(statuses
            .iter()
            .filter(|s| s.fault.is_some())
            .all(|s| fault_covers(&population, &s.device_id, s.ts)));
    }

    fn fault_covers(population: &Population, device: &str, ts: Timestamp) -> bool {
        population
            .deteriorations
            .iter()
            .any(|d| d.device_id.as_deref() == Some(device) && d.severity(ts) > 0.0)
    }

    #[test]
    fn an_offline_gateway_sends_nothing_until_it_is_back() {
        let population = Population::generate(3, 200, 30, END);
        let (patient, day, (from, back)) = population
            .patients
            .iter()
            .flat_map(|p| (0..30).map(move |day| (p, day)))
            .find_map(|(p, day)| {
                population
                    .outages(p, day)
                    .into_iter()
                    .find(|(from, back)| back.micros() - from.micros() > 24 * MICROS_PER_HOUR)
                    .map(|outage| (p, day, outage))
            })
            .expect("some flaky gateway has a long outage");
        let device = &patient.devices[0].device_id;
        let sent: Vec<Timestamp> = (day..(day + 3).min(30))
            .flat_map(|d| population.statuses(d))
            .filter(|s| &s.device_id == device)
            .map(|s| s.ts)
            .collect();
        assert!(!sent.iter().any(|ts| *ts >= from && *ts < back));
        assert!(sent.contains(&back), "a heartbeat when the gateway is back");
    }
}
