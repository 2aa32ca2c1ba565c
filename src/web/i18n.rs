//! The words of the web pages, Dutch by default and English on request.
//!
//! One [`Texts`] value per language, so a text missing from a language is a
//! compile error rather than a blank on a nurse's screen. Templates with
//! `{}` are filled in order by [`fill`]. Metric names and the reasons of
//! alerts come from [`crate::worklist::i18n`], shared with the JSON API.

use chrono::{Datelike, TimeZone, Timelike};

use crate::domain::Timestamp;
use crate::worklist::Lang;

/// Every text of the pages in one language.
pub struct Texts {
    pub skip_link: &'static str,
    pub nav_label: &'static str,
    pub nav_worklist: &'static str,
    pub sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub other_language: &'static str,
    pub role_nurse: &'static str,
    pub role_coordinator: &'static str,
    pub role_admin: &'static str,
    pub worklist_title: &'static str,
    /// `{}` alerts for `{}` patients.
    pub summary: &'static str,
    pub empty: &'static str,
    pub live_on: &'static str,
    pub live_lost: &'static str,
    pub updated: &'static str,
    pub priority: &'static str,
    pub nts_title: &'static str,
    /// Waited `{}`.
    pub waited: &'static str,
    /// `{}` left before the response target.
    pub left: &'static str,
    /// `{}` past the response target.
    pub over: &'static str,
    pub claimed_by: &'static str,
    pub not_claimed: &'static str,
    pub snoozed_until: &'static str,
    pub escalated_to: &'static str,
    pub explain_and_act: &'static str,
    pub why_here: &'static str,
    pub value_vs_threshold: &'static str,
    pub recovers_at: &'static str,
    /// `{}` of the last `{}` readings.
    pub repeat: &'static str,
    /// Holds for `{}`.
    pub held: &'static str,
    pub own_baseline: &'static str,
    pub population_prior: &'static str,
    /// From `{}` readings.
    pub from_readings: &'static str,
    pub news2_title: &'static str,
    pub news2_partial: &'static str,
    pub news2_complete: &'static str,
    pub parameter: &'static str,
    pub subscore: &'static str,
    pub not_measured: &'static str,
    /// Measured, but older than `{}` hours.
    pub stale: &'static str,
    pub band_low: &'static str,
    pub band_low_medium: &'static str,
    pub band_medium: &'static str,
    pub band_high: &'static str,
    pub trend_title: &'static str,
    /// From `{}` (at `{}`) to `{}`: change `{}`, limit `{}`.
    pub trend_text: &'static str,
    pub deviation_title: &'static str,
    pub anomaly_title: &'static str,
    /// Distance `{}`, limit `{}`.
    pub anomaly_distance: &'static str,
    pub expected: &'static str,
    pub data_quality: &'static str,
    pub alarm_signal: &'static str,
    /// A covered finding named on this alert instead of raised on its own.
    pub also_found: &'static str,
    pub device_signal: &'static str,
    pub missed_title: &'static str,
    pub chart_caption: &'static str,
    pub actions: &'static str,
    pub claim: &'static str,
    pub resolve: &'static str,
    pub outcome: &'static str,
    pub outcome_contacted_patient: &'static str,
    pub outcome_home_visit_planned: &'static str,
    pub outcome_gp_or_specialist_informed: &'static str,
    pub outcome_medication_changed_per_protocol: &'static str,
    pub outcome_no_action_needed: &'static str,
    pub outcome_measurement_error: &'static str,
    pub snooze: &'static str,
    pub snooze_for: &'static str,
    pub snooze_hint: &'static str,
    pub minutes: &'static str,
    pub hours: &'static str,
    pub escalate: &'static str,
    pub escalate_to: &'static str,
    pub target_elderly_care_physician: &'static str,
    pub target_general_practitioner: &'static str,
    pub target_out_of_hours_gp: &'static str,
    pub target_mobile_geriatric_team: &'static str,
    pub note: &'static str,
    pub add_note: &'static str,
    pub done: &'static str,
    pub conflict_claimed: &'static str,
    pub conflict: &'static str,
    pub failed: &'static str,
    pub patient_page: &'static str,
    pub birth_year: &'static str,
    pub team: &'static str,
    pub protocols: &'static str,
    pub alerts_open: &'static str,
    pub alerts_past: &'static str,
    pub no_open_alerts: &'static str,
    pub history: &'static str,
    pub measurements: &'static str,
    pub period: &'static str,
    pub days: &'static str,
    pub no_readings: &'static str,
    pub as_table: &'static str,
    pub time: &'static str,
    pub value: &'static str,
    pub device: &'static str,
    pub devices: &'static str,
    pub device_type: &'static str,
    pub last_contact: &'static str,
    pub last_reading: &'static str,
    pub battery: &'static str,
    pub fault: &'static str,
    pub never: &'static str,
    pub notes: &'static str,
    pub no_notes: &'static str,
    pub rule: &'static str,
    pub condition: &'static str,
    pub personal_thresholds: &'static str,
    pub no_personal_thresholds: &'static str,
    pub personal_mark: &'static str,
    pub review_threshold: &'static str,
    pub reviews_title: &'static str,
    pub review_by: &'static str,
    pub review_due_mark: &'static str,
    pub proposal_awaits: &'static str,
    pub proposals_title: &'static str,
    pub no_pending_proposals: &'static str,
    pub proposed_by: &'static str,
    pub approved_by: &'static str,
    pub set_threshold: &'static str,
    pub set_threshold_hint: &'static str,
    pub field_above: &'static str,
    pub field_below: &'static str,
    pub field_recover_at: &'static str,
    pub field_for_minutes: &'static str,
    pub field_repeat_count: &'static str,
    pub field_repeat_of: &'static str,
    pub field_delta: &'static str,
    pub field_window_hours: &'static str,
    pub field_due_by: &'static str,
    pub field_enabled: &'static str,
    pub valid_until_optional: &'static str,
    pub save_threshold: &'static str,
    pub approve: &'static str,
    pub reject: &'static str,
    pub withdraw: &'static str,
    pub decision_note: &'static str,
    pub own_proposal: &'static str,
    pub threshold_applied: &'static str,
    pub threshold_proposed: &'static str,
    pub valid: &'static str,
    pub until: &'static str,
    pub author: &'static str,
    pub reason: &'static str,
    pub version: &'static str,
    pub status: &'static str,
    pub outcome_none: &'static str,
    pub legend_threshold: &'static str,
    pub legend_baseline: &'static str,
    /// `{}` readings, last `{}` at `{}`.
    pub chart_summary: &'static str,
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    pub back_to_worklist: &'static str,
    pub shown_of: &'static str,
    pub nav_burden: &'static str,
    pub burden_title: &'static str,
    /// `{}` alerts, `{}` patients, `{}` days, `{}` per patient-day, `{}` false alarms.
    pub burden_summary: &'static str,
    pub burden_definitions: &'static str,
    pub burden_noisiest: &'static str,
    pub burden_by_protocol: &'static str,
    pub burden_by_rule: &'static str,
    pub burden_by_team: &'static str,
    pub burden_by_patient: &'static str,
    pub burden_key: &'static str,
    pub burden_alerts: &'static str,
    pub burden_per_patient_day: &'static str,
    pub burden_false_share: &'static str,
    pub burden_claim_minutes: &'static str,
    pub burden_in_time: &'static str,
    pub burden_escalations: &'static str,
}

/// Returns the texts of `lang`.
pub const fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Nl => &NL,
        Lang::En => &EN,
    }
}

/// Fills the `{}` of `template` with `args`, in order.
pub fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut args = args.iter();
    let mut rest = template;
    while let Some(at) = rest.find("{}") {
        out.push_str(&rest[..at]);
        out.push_str(args.next().copied().unwrap_or_default());
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

/// Formats a duration in minutes as nurses read it ("45 min", "2 u 10 min").
pub fn duration(lang: Lang, minutes: i64) -> String {
    let minutes = minutes.abs();
    let hour = match lang {
        Lang::Nl => "u",
        Lang::En => "h",
    };
    if minutes < 60 {
        format!("{minutes} min")
    } else if minutes < 48 * 60 {
        let rest = minutes % 60;
        if rest == 0 {
            format!("{} {hour}", minutes / 60)
        } else {
            format!("{} {hour} {rest} min", minutes / 60)
        }
    } else {
        let days = minutes / (24 * 60);
        match lang {
            Lang::Nl => format!("{days} dagen"),
            Lang::En => format!("{days} days"),
        }
    }
}

const MONTHS_NL: [&str; 12] = [
    "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats a moment in the care team's time zone: "7 dec 09:05".
pub fn moment(lang: Lang, zone: chrono_tz::Tz, at: Timestamp) -> String {
    let local = zone.from_utc_datetime(&at.to_datetime().naive_utc());
    let month = match lang {
        Lang::Nl => MONTHS_NL[local.month0() as usize],
        Lang::En => MONTHS_EN[local.month0() as usize],
    };
    format!(
        "{} {month} {:02}:{:02}",
        local.day(),
        local.hour(),
        local.minute()
    )
}

/// Formats a calendar date as nurses read it: "1 dec 2026".
pub fn date(lang: Lang, date: chrono::NaiveDate) -> String {
    let month = match lang {
        Lang::Nl => MONTHS_NL[date.month0() as usize],
        Lang::En => MONTHS_EN[date.month0() as usize],
    };
    format!("{} {month} {}", date.day(), date.year())
}

const NL: Texts = Texts {
    skip_link: "Naar de inhoud",
    nav_label: "Hoofdmenu",
    nav_worklist: "Werklijst",
    sign_out: "Uitloggen",
    signed_in_as: "Ingelogd als",
    other_language: "English",
    role_nurse: "verpleegkundige",
    role_coordinator: "coördinator",
    role_admin: "beheerder",
    worklist_title: "Werklijst",
    summary: "{} meldingen bij {} cliënten, meest urgent eerst",
    empty: "Geen openstaande meldingen voor uw teams.",
    live_on: "Live: nieuwe meldingen verschijnen vanzelf",
    live_lost: "Verbinding verbroken, opnieuw verbinden…",
    updated: "Werklijst bijgewerkt",
    priority: "Prioriteit",
    nts_title: "Voorgestelde NTS-urgentie",
    waited: "wacht {}",
    left: "nog {}",
    over: "{} te laat",
    claimed_by: "Opgepakt door {}",
    not_claimed: "Nog niet opgepakt",
    snoozed_until: "Uitgesteld tot {}",
    escalated_to: "Opgeschaald naar {}",
    explain_and_act: "Toelichting en acties",
    why_here: "Waarom deze melding hier staat",
    value_vs_threshold: "{}: {} (grens: {} {})",
    recovers_at: "herstelt bij {}",
    repeat: "{} van de laatste {} metingen",
    held: "houdt {} aan",
    own_baseline: "Eigen basiswaarde",
    population_prior: "Populatiewaarde (nog te weinig eigen metingen)",
    from_readings: "uit {} metingen",
    news2_title: "NEWS2",
    news2_partial: "Gedeeltelijke score: niet alle parameters zijn gemeten",
    news2_complete: "Volledige score",
    parameter: "Parameter",
    subscore: "Deelscore",
    not_measured: "niet gemeten",
    stale: "gemeten, maar ouder dan {} uur",
    band_low: "laag",
    band_low_medium: "laag-midden (een 3 op één parameter)",
    band_medium: "midden",
    band_high: "hoog",
    trend_title: "Verloop",
    trend_text: "van {} ({}) naar {}: verandering {}, grens {}",
    deviation_title: "Afwijking van eigen basiswaarde",
    anomaly_title: "Ongebruikelijke combinatie voor deze persoon",
    anomaly_distance: "afstand {} (grens {})",
    expected: "verwacht",
    data_quality: "Datakwaliteit",
    alarm_signal: "NTS-alarmsignaal",
    also_found: "Ook gevonden (hoort bij deze melding, geen aparte melding)",
    device_signal: "Apparaat",
    missed_title: "Gemiste meting",
    chart_caption: "Verloop",
    actions: "Acties",
    claim: "Oppakken",
    resolve: "Afronden",
    outcome: "Uitkomst",
    outcome_contacted_patient: "Contact met cliënt gehad",
    outcome_home_visit_planned: "Huisbezoek gepland",
    outcome_gp_or_specialist_informed: "Huisarts of specialist geïnformeerd",
    outcome_medication_changed_per_protocol: "Medicatie aangepast volgens protocol",
    outcome_no_action_needed: "Geen actie nodig",
    outcome_measurement_error: "Meetfout",
    snooze: "Uitstellen",
    snooze_for: "Uitstellen voor",
    snooze_hint: "Komt terug na deze tijd, of vervalt eerder als de waarden herstellen.",
    minutes: "minuten",
    hours: "uur",
    escalate: "Opschalen",
    escalate_to: "Opschalen naar",
    target_elderly_care_physician: "Specialist ouderengeneeskunde / behandelnetwerk",
    target_general_practitioner: "Huisarts",
    target_out_of_hours_gp: "Huisartsenpost",
    target_mobile_geriatric_team: "Mobiel geriatrisch team",
    note: "Notitie",
    add_note: "Notitie toevoegen",
    done: "Gelukt.",
    conflict_claimed: "Al opgepakt door {}.",
    conflict: "De melding is intussen gewijzigd: {}",
    failed: "Dat lukte niet: {}",
    patient_page: "Cliënt",
    birth_year: "Geboortejaar",
    team: "Team",
    protocols: "Protocollen",
    alerts_open: "Openstaande meldingen",
    alerts_past: "Eerdere meldingen",
    no_open_alerts: "Geen openstaande meldingen.",
    history: "Geschiedenis",
    measurements: "Metingen",
    period: "Periode",
    days: "{} dagen",
    no_readings: "Geen metingen in deze periode.",
    as_table: "Als tabel",
    time: "Tijd",
    value: "Waarde",
    device: "Apparaat",
    devices: "Apparaten",
    device_type: "Soort",
    last_contact: "Laatste contact",
    last_reading: "Laatste meting",
    battery: "Batterij",
    fault: "Storing",
    never: "nooit",
    notes: "Notities",
    no_notes: "Geen notities.",
    rule: "Regel",
    condition: "Voorwaarde",
    personal_thresholds: "Persoonlijke grenzen",
    no_personal_thresholds: "Geen persoonlijke grenzen: het protocol geldt.",
    personal_mark: "* persoonlijke grens, gaat voor het protocol",
    review_threshold: "Drempel herbeoordelen",
    reviews_title: "Drempels herbeoordelen",
    review_by: "Herbeoordelen uiterlijk",
    review_due_mark: "herbeoordelen",
    proposal_awaits: "Drempelvoorstel wacht op een tweede coördinator",
    proposals_title: "Drempelvoorstellen die wachten op een tweede coördinator",
    no_pending_proposals: "Geen voorstellen die wachten.",
    proposed_by: "Voorgesteld door",
    approved_by: "Goedgekeurd door",
    set_threshold: "Persoonlijke grens instellen",
    set_threshold_hint: "Strenger (eerder, vaker of urgenter melden) geldt direct. Ruimer geldt pas als een tweede coördinator het goedkeurt.",
    field_above: "Melden boven",
    field_below: "Melden onder",
    field_recover_at: "Herstelt bij",
    field_for_minutes: "Minuten aanhoudend",
    field_repeat_count: "Aantal metingen",
    field_repeat_of: "Van de laatste",
    field_delta: "Verandering",
    field_window_hours: "Over (uren)",
    field_due_by: "Gemeten vóór",
    field_enabled: "Regel aan voor deze cliënt",
    valid_until_optional: "Geldig tot (optioneel)",
    save_threshold: "Opslaan",
    approve: "Goedkeuren",
    reject: "Afwijzen",
    withdraw: "Intrekken",
    decision_note: "Toelichting (optioneel)",
    own_proposal: "Uw eigen voorstel: een andere coördinator keurt het goed.",
    threshold_applied: "Opgeslagen: geldt direct.",
    threshold_proposed: "Voorstel ingediend: geldt pas na goedkeuring door een tweede coördinator.",
    valid: "Geldig vanaf",
    until: "tot",
    author: "Door",
    reason: "Reden",
    version: "Versie",
    status: "Status",
    outcome_none: "—",
    legend_threshold: "grens",
    legend_baseline: "eigen basisband",
    chart_summary: "{} metingen, laatste {} op {}",
    not_found_title: "Niet gevonden",
    not_found_text: "Deze pagina bestaat niet of u heeft er geen toegang toe.",
    back_to_worklist: "Terug naar de werklijst",
    shown_of: "{} van {} getoond",
    nav_burden: "Alarmlast",
    burden_title: "Alarmlast",
    burden_summary: "{} meldingen bij {} cliënten in {} dagen: {} per cliënt per dag, {} vals alarm.",
    burden_definitions: "Vals alarm: afgerond als ‘geen actie nodig’ of ‘meetfout’, van de meldingen die een verpleegkundige met een uitkomst afrondde. Oppaktijd: mediaan in minuten vanaf de melding.",
    burden_noisiest: "Meest meldende regels, afgelopen week",
    burden_by_protocol: "Per protocol",
    burden_by_rule: "Per regel",
    burden_by_team: "Per team",
    burden_by_patient: "Cliënten met de meeste meldingen",
    burden_key: "Naam",
    burden_alerts: "Meldingen",
    burden_per_patient_day: "Per cliënt per dag",
    burden_false_share: "Vals alarm",
    burden_claim_minutes: "Oppaktijd (min)",
    burden_in_time: "Op tijd opgepakt",
    burden_escalations: "Opgeschaald",
};

const EN: Texts = Texts {
    skip_link: "Skip to content",
    nav_label: "Main menu",
    nav_worklist: "Worklist",
    sign_out: "Sign out",
    signed_in_as: "Signed in as",
    other_language: "Nederlands",
    role_nurse: "nurse",
    role_coordinator: "coordinator",
    role_admin: "administrator",
    worklist_title: "Worklist",
    summary: "{} alerts for {} patients, most urgent first",
    empty: "No open alerts for your teams.",
    live_on: "Live: new alerts appear by themselves",
    live_lost: "Connection lost, reconnecting…",
    updated: "Worklist updated",
    priority: "Priority",
    nts_title: "Suggested NTS urgency",
    waited: "waited {}",
    left: "{} left",
    over: "{} overdue",
    claimed_by: "Claimed by {}",
    not_claimed: "Not claimed yet",
    snoozed_until: "Snoozed until {}",
    escalated_to: "Escalated to {}",
    explain_and_act: "Explanation and actions",
    why_here: "Why this alert is here",
    value_vs_threshold: "{}: {} (limit: {} {})",
    recovers_at: "recovers at {}",
    repeat: "{} of the last {} readings",
    held: "holding for {}",
    own_baseline: "Own baseline",
    population_prior: "Population value (not enough own readings yet)",
    from_readings: "from {} readings",
    news2_title: "NEWS2",
    news2_partial: "Partial score: not every parameter was measured",
    news2_complete: "Complete score",
    parameter: "Parameter",
    subscore: "Sub-score",
    not_measured: "not measured",
    stale: "measured, but older than {} hours",
    band_low: "low",
    band_low_medium: "low-medium (a 3 in one parameter)",
    band_medium: "medium",
    band_high: "high",
    trend_title: "Trend",
    trend_text: "from {} ({}) to {}: change {}, limit {}",
    deviation_title: "Deviation from own baseline",
    anomaly_title: "Unusual combination for this person",
    anomaly_distance: "distance {} (limit {})",
    expected: "expected",
    data_quality: "Data quality",
    alarm_signal: "NTS alarm signal",
    also_found: "Also found (part of this alert, not a separate one)",
    device_signal: "Device",
    missed_title: "Missed measurement",
    chart_caption: "Trend",
    actions: "Actions",
    claim: "Claim",
    resolve: "Resolve",
    outcome: "Outcome",
    outcome_contacted_patient: "Contacted the patient",
    outcome_home_visit_planned: "Home visit planned",
    outcome_gp_or_specialist_informed: "GP or specialist informed",
    outcome_medication_changed_per_protocol: "Medication changed per protocol",
    outcome_no_action_needed: "No action needed",
    outcome_measurement_error: "Measurement error",
    snooze: "Snooze",
    snooze_for: "Snooze for",
    snooze_hint: "Comes back after this time, or ends earlier when the values recover.",
    minutes: "minutes",
    hours: "hours",
    escalate: "Escalate",
    escalate_to: "Escalate to",
    target_elderly_care_physician: "Elderly-care physician / treatment network",
    target_general_practitioner: "General practitioner",
    target_out_of_hours_gp: "Out-of-hours GP post",
    target_mobile_geriatric_team: "Mobile geriatric team",
    note: "Note",
    add_note: "Add note",
    done: "Done.",
    conflict_claimed: "Already claimed by {}.",
    conflict: "The alert was changed meanwhile: {}",
    failed: "That did not work: {}",
    patient_page: "Patient",
    birth_year: "Year of birth",
    team: "Team",
    protocols: "Protocols",
    alerts_open: "Open alerts",
    alerts_past: "Earlier alerts",
    no_open_alerts: "No open alerts.",
    history: "History",
    measurements: "Measurements",
    period: "Period",
    days: "{} days",
    no_readings: "No readings in this period.",
    as_table: "As a table",
    time: "Time",
    value: "Value",
    device: "Device",
    devices: "Devices",
    device_type: "Type",
    last_contact: "Last contact",
    last_reading: "Last reading",
    battery: "Battery",
    fault: "Fault",
    never: "never",
    notes: "Notes",
    no_notes: "No notes.",
    rule: "Rule",
    condition: "Condition",
    personal_thresholds: "Personal thresholds",
    no_personal_thresholds: "No personal thresholds: the protocol applies.",
    personal_mark: "* personal threshold, wins over the protocol",
    review_threshold: "Review threshold",
    reviews_title: "Thresholds to review",
    review_by: "Review by",
    review_due_mark: "review due",
    proposal_awaits: "Threshold proposal awaiting a second coordinator",
    proposals_title: "Threshold proposals awaiting a second coordinator",
    no_pending_proposals: "No proposals waiting.",
    proposed_by: "Proposed by",
    approved_by: "Approved by",
    set_threshold: "Set a personal threshold",
    set_threshold_hint: "Stricter (alerting sooner, more often or more urgently) applies at once. Looser applies only once a second coordinator approves it.",
    field_above: "Alert above",
    field_below: "Alert below",
    field_recover_at: "Recovers at",
    field_for_minutes: "Minutes sustained",
    field_repeat_count: "Readings meeting it",
    field_repeat_of: "Of the last",
    field_delta: "Change",
    field_window_hours: "Over (hours)",
    field_due_by: "Measured by",
    field_enabled: "Rule on for this patient",
    valid_until_optional: "Valid until (optional)",
    save_threshold: "Save",
    approve: "Approve",
    reject: "Reject",
    withdraw: "Withdraw",
    decision_note: "Note (optional)",
    own_proposal: "Your own proposal: another coordinator approves it.",
    threshold_applied: "Saved: applies at once.",
    threshold_proposed: "Proposal submitted: applies once a second coordinator approves it.",
    valid: "Valid from",
    until: "until",
    author: "By",
    reason: "Reason",
    version: "Version",
    status: "Status",
    outcome_none: "—",
    legend_threshold: "limit",
    legend_baseline: "own baseline band",
    chart_summary: "{} readings, last {} at {}",
    not_found_title: "Not found",
    not_found_text: "This page does not exist or you have no access to it.",
    back_to_worklist: "Back to the worklist",
    shown_of: "{} of {} shown",
    nav_burden: "Alarm burden",
    burden_title: "Alarm burden",
    burden_summary: "{} alerts for {} patients in {} days: {} per patient per day, {} false alarms.",
    burden_definitions: "False alarm: resolved as ‘no action needed’ or ‘measurement error’, of the alerts a nurse resolved with an outcome. Time to claim: median minutes from the alert.",
    burden_noisiest: "Noisiest rules, last week",
    burden_by_protocol: "Per protocol",
    burden_by_rule: "Per rule",
    burden_by_team: "Per team",
    burden_by_patient: "Patients with the most alerts",
    burden_key: "Name",
    burden_alerts: "Alerts",
    burden_per_patient_day: "Per patient per day",
    burden_false_share: "False alarms",
    burden_claim_minutes: "Time to claim (min)",
    burden_in_time: "Claimed in time",
    burden_escalations: "Escalated",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_placeholders_in_order_and_tolerates_missing_arguments() {
        assert_eq!(fill("{} of {}", &["2", "3"]), "2 of 3");
        assert_eq!(fill("nog {}", &[]), "nog ");
        assert_eq!(fill("geen", &["x"]), "geen");
    }

    #[test]
    fn durations_read_as_nurses_say_them() {
        assert_eq!(duration(Lang::Nl, 45), "45 min");
        assert_eq!(duration(Lang::Nl, -130), "2 u 10 min");
        assert_eq!(duration(Lang::En, 120), "2 h");
        assert_eq!(duration(Lang::Nl, 3 * 24 * 60 + 5), "3 dagen");
    }

    #[test]
    fn moments_are_shown_in_the_team_time_zone() {
        // 2026-12-07T08:05:00Z is 09:05 in Amsterdam (CET).
        let at = Timestamp::parse_rfc3339("2026-12-07T08:05:00Z").unwrap();
        assert_eq!(
            moment(Lang::Nl, chrono_tz::Europe::Amsterdam, at),
            "7 dec 09:05"
        );
        // Summer time: 2026-07-01T08:05:00Z is 10:05 (CEST).
        let summer = Timestamp::parse_rfc3339("2026-07-01T08:05:00Z").unwrap();
        assert_eq!(
            moment(Lang::En, chrono_tz::Europe::Amsterdam, summer),
            "1 Jul 10:05"
        );
    }

    #[test]
    fn dates_read_as_nurses_say_them() {
        let date = chrono::NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
        assert_eq!(super::date(Lang::Nl, date), "1 mrt 2027");
        assert_eq!(super::date(Lang::En, date), "1 Mar 2027");
    }

    #[test]
    fn every_dutch_text_differs_from_english_where_it_should() {
        assert_ne!(texts(Lang::Nl).claim, texts(Lang::En).claim);
        assert_eq!(texts(Lang::Nl).other_language, "English");
        assert_eq!(texts(Lang::En).other_language, "Nederlands");
    }
}
