//! The device simulator behind `thuiswacht simulate`: a reproducible
//! population of older people at home with realistic devices and daily
//! patterns, and injected deteriorations written down so that triage can be
//! scored against them.
//!
//! Everything is a pure function of the seed: [`Population::generate`] draws
//! the patients, their devices and their deteriorations; [`Population::day`]
//! draws one simulated day's messages from a generator seeded by
//! (seed, patient, day), so any day can be produced alone, in any order, with
//! the same result. [`Population::statuses`] draws the devices' status
//! heartbeats (battery, fault) the same way. [`publish`] sends both over MQTT.

mod payload;
mod population;
mod publish;
mod status;
mod vitals;

pub use payload::{encode, encode_status};
pub use population::{
    Deterioration, DeteriorationKind, Population, SimDevice, SimMessage, SimPatient, DEMO_TEAMS,
};
pub use publish::{publish, register, write_truth, PublishOptions, PublishReport};
pub use status::{SimStatus, SIMULATED_FAULT};
