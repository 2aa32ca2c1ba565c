//! The languages of the user interface: Dutch by default, English on request.
//!
//! Texts are looked up by key from two tables compiled into the binary; a key
//! missing from English falls back to Dutch, so a forgotten translation is
//! visible but never breaks a page. A test checks both tables have the same
//! keys.

use serde::{Deserialize, Serialize};

use crate::domain::Metric;

/// A user-interface language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Nl,
    En,
}

impl Lang {
    /// Parses `nl` or `en` (case-insensitive, an `Accept-Language`-style
    /// region suffix ignored); anything else is `None`.
    pub fn parse(text: &str) -> Option<Lang> {
        let primary = text
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "nl" => Some(Lang::Nl),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub const fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    /// Returns the text of `key`.
    pub fn text(self, key: &str) -> &'static str {
        let table = match self {
            Lang::Nl => NL,
            Lang::En => EN,
        };
        lookup(table, key)
            .or_else(|| lookup(NL, key))
            .unwrap_or("?")
    }

    /// Returns the name of a metric as a nurse says it.
    pub fn metric(self, metric: Metric) -> &'static str {
        self.text(metric.code())
    }

    /// Formats a number with the language's decimal separator and at most
    /// `decimals` decimals (trailing zeros dropped).
    pub fn number(self, value: f64, decimals: usize) -> String {
        let mut text = format!("{value:.decimals$}");
        if text.contains('.') {
            while text.ends_with('0') {
                text.pop();
            }
            if text.ends_with('.') {
                text.pop();
            }
        }
        if text == "-0" {
            text = "0".to_owned();
        }
        match self {
            Lang::Nl => text.replace('.', ","),
            Lang::En => text,
        }
    }
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(candidate, _)| *candidate == key)
        .map(|(_, text)| *text)
}

/// Dutch texts.
pub const NL: &[(&str, &str)] = &[
    ("heart_rate", "hartslag"),
    ("spo2", "zuurstofsaturatie"),
    ("bp_systolic", "bovendruk"),
    ("bp_diastolic", "onderdruk"),
    ("body_temperature", "temperatuur"),
    ("respiratory_rate", "ademhalingsfrequentie"),
    ("body_weight", "gewicht"),
    ("blood_glucose", "bloedglucose"),
    ("steps", "stappen"),
    ("skin_temperature", "huidtemperatuur"),
    ("consciousness", "bewustzijn"),
    ("supplemental_oxygen", "extra zuurstof"),
    ("above", "boven"),
    ("below", "onder"),
    ("limit", "grens"),
    ("hours", "uur"),
    ("own_baseline", "eigen basiswaarde"),
    ("missing", "ontbreekt"),
    (
        "unusual_combination",
        "ongebruikelijke combinatie voor deze persoon",
    ),
    ("since", "sinds"),
    ("not_measured_by", "niet gemeten vóór"),
    ("cause_device_silent", "apparaat geeft geen signaal"),
    ("cause_not_measured", "apparaat werkt, niet gemeten"),
    ("cause_no_device", "geen apparaat gekoppeld"),
    ("battery_low", "batterij bijna leeg"),
    ("device_fault", "apparaatstoring"),
    ("implausible_value", "onwaarschijnlijke meetwaarde"),
    ("late_reading", "late meting"),
    ("second_contact", "tweede contact"),
    ("also_found", "ook"),
    ("rapid_deterioration", "snelle achteruitgang"),
    ("priority_high", "hoog"),
    ("priority_medium", "middel"),
    ("priority_low", "laag"),
    ("priority_informational", "informatief"),
    ("status_open", "open"),
    ("status_claimed", "opgepakt"),
    ("status_snoozed", "uitgesteld"),
    ("status_escalated", "opgeschaald"),
    ("status_resolved", "afgehandeld"),
    ("overdue", "te laat"),
    ("minutes_left", "min over"),
    ("minutes_over", "min te laat"),
];

/// English texts.
pub const EN: &[(&str, &str)] = &[
    ("heart_rate", "heart rate"),
    ("spo2", "oxygen saturation"),
    ("bp_systolic", "systolic pressure"),
    ("bp_diastolic", "diastolic pressure"),
    ("body_temperature", "temperature"),
    ("respiratory_rate", "respiration rate"),
    ("body_weight", "weight"),
    ("blood_glucose", "blood glucose"),
    ("steps", "steps"),
    ("skin_temperature", "skin temperature"),
    ("consciousness", "consciousness"),
    ("supplemental_oxygen", "supplemental oxygen"),
    ("above", "above"),
    ("below", "below"),
    ("limit", "limit"),
    ("hours", "hours"),
    ("own_baseline", "own baseline"),
    ("missing", "missing"),
    ("unusual_combination", "unusual combination for this person"),
    ("since", "since"),
    ("not_measured_by", "not measured by"),
    ("cause_device_silent", "device silent"),
    ("cause_not_measured", "device alive, not measured"),
    ("cause_no_device", "no device linked"),
    ("battery_low", "battery low"),
    ("device_fault", "device fault"),
    ("implausible_value", "implausible value"),
    ("late_reading", "late reading"),
    ("second_contact", "second contact"),
    ("also_found", "also"),
    ("rapid_deterioration", "rapid deterioration"),
    ("priority_high", "high"),
    ("priority_medium", "medium"),
    ("priority_low", "low"),
    ("priority_informational", "informational"),
    ("status_open", "open"),
    ("status_claimed", "claimed"),
    ("status_snoozed", "snoozed"),
    ("status_escalated", "escalated"),
    ("status_resolved", "resolved"),
    ("overdue", "overdue"),
    ("minutes_left", "min left"),
    ("minutes_over", "min overdue"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_keys() {
        fn keys(table: &'static [(&'static str, &'static str)]) -> Vec<&'static str> {
            let mut keys: Vec<&str> = table.iter().map(|(key, _)| *key).collect();
            keys.sort_unstable();
            keys
        }
        assert_eq!(keys(NL), keys(EN));
        for metric in Metric::ALL {
            assert_ne!(Lang::Nl.metric(metric), "?", "{metric} has no Dutch name");
        }
    }

    #[test]
    fn dutch_is_the_default_and_numbers_use_its_comma() {
        assert_eq!(Lang::default(), Lang::Nl);
        assert_eq!(Lang::Nl.number(38.90, 1), "38,9");
        assert_eq!(Lang::En.number(38.90, 1), "38.9");
        assert_eq!(Lang::Nl.number(92.0, 1), "92");
        assert_eq!(Lang::Nl.number(-0.04, 1), "0");
        assert_eq!(Lang::parse("en-GB"), Some(Lang::En));
        assert_eq!(Lang::parse("NL"), Some(Lang::Nl));
        assert_eq!(Lang::parse("de"), None);
    }
}
