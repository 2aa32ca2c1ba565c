//! Units of measure: the canonical UCUM units readings are stored in, and the
//! other spellings (SenML names, FHIR `unit` texts, imperial units) that
//! decoders convert from.

use serde::{Deserialize, Serialize};

/// A unit that Thuiswacht can read. Canonical units are the UCUM codes of
/// DESIGN §4; the others are converted to a canonical one on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// `/min`: beats or breaths per minute.
    PerMinute,
    /// `1/s` (SenML `1/s`, `Hz`): events per second.
    PerSecond,
    /// `%`.
    Percent,
    /// `/` (SenML ratio, 0–1), converted to percent.
    Ratio,
    /// `mm[Hg]`.
    MillimetreMercury,
    /// `Pa`.
    Pascal,
    /// `kPa`.
    Kilopascal,
    /// `Cel`.
    Celsius,
    /// `K`.
    Kelvin,
    /// `[degF]`.
    Fahrenheit,
    /// `kg`.
    Kilogram,
    /// `g`.
    Gram,
    /// `[lb_av]`.
    Pound,
    /// `mmol/L`.
    MillimolePerLitre,
    /// `mg/dL`, for glucose only (molar mass 180.16 g/mol).
    MilligramPerDecilitre,
    /// `{steps}`.
    Steps,
    /// `1`: a dimensionless code (ACVPU level, air or oxygen).
    Unity,
}

impl Unit {
    /// Returns the UCUM code of the unit.
    pub const fn ucum(self) -> &'static str {
        match self {
            Unit::PerMinute => "/min",
            Unit::PerSecond => "1/s",
            Unit::Percent => "%",
            Unit::Ratio => "/",
            Unit::MillimetreMercury => "mm[Hg]",
            Unit::Pascal => "Pa",
            Unit::Kilopascal => "kPa",
            Unit::Celsius => "Cel",
            Unit::Kelvin => "K",
            Unit::Fahrenheit => "[degF]",
            Unit::Kilogram => "kg",
            Unit::Gram => "g",
            Unit::Pound => "[lb_av]",
            Unit::MillimolePerLitre => "mmol/L",
            Unit::MilligramPerDecilitre => "mg/dL",
            Unit::Steps => "{steps}",
            Unit::Unity => "1",
        }
    }

    /// Parses a unit written as UCUM, as a SenML unit name (RFC 8428 §12.1),
    /// or as one of the human-readable forms FHIR examples use in `unit`.
    pub fn parse(text: &str) -> Option<Unit> {
        let unit = match text {
            "/min" | "beat/min" | "beats/min" | "{beats}/min" | "{beat}/min" | "{breaths}/min"
            | "breaths/min" | "bpm" => Unit::PerMinute,
            "1/s" | "Hz" | "beats" | "beat/s" => Unit::PerSecond,
            "%" | "%RH" | "%EL" => Unit::Percent,
            "/" => Unit::Ratio,
            "mm[Hg]" | "mmHg" => Unit::MillimetreMercury,
            "Pa" => Unit::Pascal,
            "kPa" => Unit::Kilopascal,
            "Cel" | "°C" | "C" | "degC" => Unit::Celsius,
            "K" => Unit::Kelvin,
            "[degF]" | "°F" | "degF" | "F" => Unit::Fahrenheit,
            "kg" => Unit::Kilogram,
            "g" => Unit::Gram,
            "[lb_av]" | "lb" | "lbs" => Unit::Pound,
            "mmol/L" | "mmol/l" => Unit::MillimolePerLitre,
            "mg/dL" | "mg/dl" => Unit::MilligramPerDecilitre,
            "{steps}" | "{step}" | "steps" | "count" | "{count}" => Unit::Steps,
            "1" | "{score}" => Unit::Unity,
            _ => return None,
        };
        Some(unit)
    }

    /// Converts `value` in this unit to `target`, or returns `None` when the
    /// two measure different quantities.
    pub fn convert(self, value: f64, target: Unit) -> Option<f64> {
        if self == target {
            return Some(value);
        }
        use Unit::*;
        let converted = match (self, target) {
            (PerSecond, PerMinute) => value * 60.0,
            (PerMinute, PerSecond) => value / 60.0,
            (Ratio, Percent) => value * 100.0,
            (Percent, Ratio) => value / 100.0,
            (Pascal, MillimetreMercury) => value / MMHG_IN_PASCAL,
            (Kilopascal, MillimetreMercury) => value * 1000.0 / MMHG_IN_PASCAL,
            (Kelvin, Celsius) => value - 273.15,
            (Fahrenheit, Celsius) => (value - 32.0) * 5.0 / 9.0,
            (Gram, Kilogram) => value / 1000.0,
            (Pound, Kilogram) => value * KILOGRAM_PER_POUND,
            (MilligramPerDecilitre, MillimolePerLitre) => value / GLUCOSE_MG_DL_PER_MMOL_L,
            _ => return None,
        };
        Some(converted)
    }
}

/// One millimetre of mercury in pascal (conventional value, 133.322387415 Pa).
const MMHG_IN_PASCAL: f64 = 133.322_387_415;
/// The international avoirdupois pound.
const KILOGRAM_PER_POUND: f64 = 0.453_592_37;
/// mg/dL per mmol/L of glucose (molar mass 180.16 g/mol).
const GLUCOSE_MG_DL_PER_MMOL_L: f64 = 18.016;

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.ucum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senml_names_parse_to_ucum_units() {
        assert_eq!(Unit::parse("beat/min"), Some(Unit::PerMinute));
        assert_eq!(Unit::parse("Cel"), Some(Unit::Celsius));
        assert_eq!(Unit::parse("kPa"), Some(Unit::Kilopascal));
        assert_eq!(Unit::parse("furlong"), None);
    }

    #[test]
    fn pressure_and_temperature_convert_to_canonical_units() {
        let mmhg = Unit::Kilopascal
            .convert(16.0, Unit::MillimetreMercury)
            .unwrap();
        assert!((mmhg - 120.0).abs() < 0.1, "{mmhg}");
        let celsius = Unit::Fahrenheit.convert(98.6, Unit::Celsius).unwrap();
        assert!((celsius - 37.0).abs() < 1e-9);
        assert!((Unit::Kelvin.convert(310.15, Unit::Celsius).unwrap() - 37.0).abs() < 1e-9);
        assert_eq!(Unit::Ratio.convert(0.97, Unit::Percent), Some(97.0));
        assert_eq!(Unit::Kilogram.convert(80.0, Unit::MillimetreMercury), None);
    }

    #[test]
    fn every_unit_round_trips_through_its_ucum_code() {
        use Unit::*;
        for unit in [
            PerMinute,
            PerSecond,
            Percent,
            Ratio,
            MillimetreMercury,
            Pascal,
            Kilopascal,
            Celsius,
            Kelvin,
            Fahrenheit,
            Kilogram,
            Gram,
            Pound,
            MillimolePerLitre,
            MilligramPerDecilitre,
            Steps,
            Unity,
        ] {
            assert_eq!(Unit::parse(unit.ucum()), Some(unit));
        }
    }
}
