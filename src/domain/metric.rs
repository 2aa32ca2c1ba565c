//! Vital-sign metrics with their LOINC codes and canonical UCUM units
//! (DESIGN §4, "Metrics (LOINC, UCUM)").

use serde::{Deserialize, Serialize};

use super::Unit;

/// A measured quantity. The set is closed: a reading of any other quantity is
/// rejected as `unknown_metric`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    HeartRate,
    Spo2,
    BpSystolic,
    BpDiastolic,
    BodyTemperature,
    RespiratoryRate,
    BodyWeight,
    BloodGlucose,
    Steps,
    SkinTemperature,
    /// Level of consciousness on the ACVPU scale, entered by a nurse:
    /// 0 = alert, 1 = new confusion, 2 = voice, 3 = pain, 4 = unresponsive.
    Consciousness,
    /// Whether the patient breathes supplemental oxygen: 1 = oxygen, 0 = air.
    SupplementalOxygen,
}

impl Metric {
    /// Every metric, in a stable order.
    pub const ALL: [Metric; 12] = [
        Metric::HeartRate,
        Metric::Spo2,
        Metric::BpSystolic,
        Metric::BpDiastolic,
        Metric::BodyTemperature,
        Metric::RespiratoryRate,
        Metric::BodyWeight,
        Metric::BloodGlucose,
        Metric::Steps,
        Metric::SkinTemperature,
        Metric::Consciousness,
        Metric::SupplementalOxygen,
    ];

    /// Returns the stable snake_case name used in payloads, the database and the API.
    pub const fn code(self) -> &'static str {
        match self {
            Metric::HeartRate => "heart_rate",
            Metric::Spo2 => "spo2",
            Metric::BpSystolic => "bp_systolic",
            Metric::BpDiastolic => "bp_diastolic",
            Metric::BodyTemperature => "body_temperature",
            Metric::RespiratoryRate => "respiratory_rate",
            Metric::BodyWeight => "body_weight",
            Metric::BloodGlucose => "blood_glucose",
            Metric::Steps => "steps",
            Metric::SkinTemperature => "skin_temperature",
            Metric::Consciousness => "consciousness",
            Metric::SupplementalOxygen => "supplemental_oxygen",
        }
    }

    /// Parses a metric name as written by [`Metric::code`].
    pub fn from_code(code: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|metric| metric.code() == code)
    }

    /// Returns the LOINC code of the metric.
    pub const fn loinc(self) -> &'static str {
        match self {
            Metric::HeartRate => "8867-4",
            Metric::Spo2 => "59408-5",
            Metric::BpSystolic => "8480-6",
            Metric::BpDiastolic => "8462-4",
            Metric::BodyTemperature => "8310-5",
            Metric::RespiratoryRate => "9279-1",
            Metric::BodyWeight => "29463-7",
            Metric::BloodGlucose => "15074-8",
            Metric::Steps => "55423-8",
            Metric::SkinTemperature => "39106-0",
            // Level of responsiveness (AVPU); ACVPU adds new confusion.
            Metric::Consciousness => "67775-7",
            // Inhaled oxygen concentration: 0 means room air.
            Metric::SupplementalOxygen => "3150-0",
        }
    }

    /// Maps a LOINC code to a metric. Besides each metric's own code this
    /// accepts the codes that mean the same quantity in practice: arterial
    /// oxygen saturation (2708-6) and the FHIR vital-signs profile's "oxygen
    /// saturation in arterial blood by pulse oximetry" are both SpO2.
    pub fn from_loinc(code: &str) -> Option<Metric> {
        match code {
            "2708-6" | "59408-5" | "20564-1" => Some(Metric::Spo2),
            "8867-4" => Some(Metric::HeartRate),
            "8480-6" => Some(Metric::BpSystolic),
            "8462-4" => Some(Metric::BpDiastolic),
            "8310-5" | "8331-1" | "8332-9" | "8333-7" => Some(Metric::BodyTemperature),
            "9279-1" => Some(Metric::RespiratoryRate),
            "29463-7" | "3141-9" => Some(Metric::BodyWeight),
            "15074-8" | "2339-0" | "2345-7" => Some(Metric::BloodGlucose),
            "55423-8" | "41950-7" => Some(Metric::Steps),
            "39106-0" => Some(Metric::SkinTemperature),
            "67775-7" => Some(Metric::Consciousness),
            "3150-0" => Some(Metric::SupplementalOxygen),
            _ => None,
        }
    }

    /// Returns the canonical UCUM unit in which readings of this metric are stored.
    pub const fn unit(self) -> Unit {
        match self {
            Metric::HeartRate | Metric::RespiratoryRate => Unit::PerMinute,
            Metric::Spo2 => Unit::Percent,
            Metric::BpSystolic | Metric::BpDiastolic => Unit::MillimetreMercury,
            Metric::BodyTemperature | Metric::SkinTemperature => Unit::Celsius,
            Metric::BodyWeight => Unit::Kilogram,
            Metric::BloodGlucose => Unit::MillimolePerLitre,
            Metric::Steps => Unit::Steps,
            Metric::Consciousness | Metric::SupplementalOxygen => Unit::Unity,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_round_trips_through_its_code_and_loinc() {
        for metric in Metric::ALL {
            assert_eq!(Metric::from_code(metric.code()), Some(metric));
            assert_eq!(Metric::from_loinc(metric.loinc()), Some(metric));
        }
        assert_eq!(Metric::from_code("blood_pressure"), None);
        assert_eq!(Metric::from_loinc("85354-9"), None);
    }

    #[test]
    fn arterial_saturation_code_maps_to_spo2() {
        assert_eq!(Metric::from_loinc("2708-6"), Some(Metric::Spo2));
    }
}
