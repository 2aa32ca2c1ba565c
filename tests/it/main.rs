//! Integration tests, one binary (faster to link). They talk to the real
//! PostgreSQL (`DATABASE_URL`) and the real Mosquitto
//! (`THUISWACHT_TEST_MQTT_URL`) that `scripts/test` makes sure are running;
//! a missing service fails the test, it is never skipped.

mod helpers;

mod admin_cli;
mod alarm_burden;
mod auth;
mod authorization_matrix;
mod browser;
mod crash;
mod db_outage;
mod device_status;
mod embedded;
mod http_ingest;
mod load_worklist_data;
mod mqtt_ingest;
mod mqtts;
mod observations;
mod openapi;
mod protocols;
mod simulator;
mod snooze;
mod store_contract;
mod thresholds;
mod triage_alerts;
mod triage_rebuild;
mod web_pages;
mod worklist_api;
