//! The command line, run as the real binary: admin commands print ids for
//! scripts, `check` validates the folders, and bad configuration is reported
//! clearly.

use std::process::{Command, Output};

use crate::helpers::*;

fn thuiswacht(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("THUISWACHT_DATABASE_URL", database_url)
        .env("THUISWACHT_MQTT_URL", mqtt_url())
        .output()
        .expect("run thuiswacht")
}

fn stdout_line(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn admin_commands_register_teams_patients_devices_and_tokens() {
    // Arrange
    let database = TestDatabase::create().await;
    let url = &database.url;
    // Act
    let team = stdout_line(&thuiswacht(url, &["admin", "team", "add", "Emmen"]));
    let patient = stdout_line(&thuiswacht(
        url,
        &[
            "admin",
            "patient",
            "add",
            "--team",
            "Emmen",
            "--display-name",
            "Mevrouw de Vries",
            "--birth-year",
            "1936",
            "--protocol",
            "default,heart-failure",
        ],
    ));
    let device = stdout_line(&thuiswacht(
        url,
        &[
            "admin",
            "device",
            "add",
            "scale-77",
            "--profile",
            "weight-scale",
            "--patient",
            &patient,
        ],
    ));
    let token = stdout_line(&thuiswacht(
        url,
        &[
            "admin",
            "token",
            "add",
            "gateway Emmen",
            "--scope",
            "ingest",
        ],
    ));
    // Assert: ids alone on stdout, usable by scripts.
    assert!(uuid::Uuid::parse_str(&team).is_ok(), "{team}");
    assert!(uuid::Uuid::parse_str(&patient).is_ok(), "{patient}");
    assert_eq!(device, "scale-77");
    assert!(token.starts_with("tw_") && token.len() == 67, "{token}");
    let store = database.store().await;
    let found = store
        .find_token(&thuiswacht::api::token_hash(&token))
        .await
        .unwrap();
    assert!(found.is_some(), "the printed token works");
    let devices = stdout_line(&thuiswacht(url, &["admin", "--json", "device", "list"]));
    let devices: serde_json::Value = serde_json::from_str(&devices).unwrap();
    assert_eq!(devices[0]["device_id"], "scale-77");
    assert_eq!(devices[0]["patient_id"], patient.as_str());
    let patients = stdout_line(&thuiswacht(url, &["admin", "patient", "list"]));
    assert!(
        patients.contains("Mevrouw de Vries") && patients.contains("default,heart-failure"),
        "{patients}"
    );
    // Refusals name the problem.
    let duplicate = thuiswacht(url, &["admin", "team", "add", "Emmen"]);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("team Emmen already exists"));
    let bad_profile = thuiswacht(
        url,
        &[
            "admin",
            "device",
            "add",
            "x-1",
            "--profile",
            "toaster",
            "--patient",
            &patient,
        ],
    );
    assert!(String::from_utf8_lossy(&bad_profile.stderr).contains("unknown profile toaster"));
    let bad_protocol = thuiswacht(
        url,
        &[
            "admin",
            "patient",
            "add",
            "--team",
            "Emmen",
            "--display-name",
            "X",
            "--protocol",
            "astrology",
        ],
    );
    assert!(String::from_utf8_lossy(&bad_protocol.stderr).contains("unknown protocol astrology"));
}

fn stderr_of(output: &Output) -> String {
    assert!(!output.status.success(), "expected a refusal");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn admin_user_commands_create_list_and_disable_users_with_one_time_passwords() {
    // Arrange
    let database = TestDatabase::create().await;
    let url = &database.url;
    stdout_line(&thuiswacht(url, &["admin", "team", "add", "Assen"]));
    stdout_line(&thuiswacht(url, &["admin", "team", "add", "Emmen"]));
    // Act
    let password = stdout_line(&thuiswacht(
        url,
        &[
            "admin",
            "user",
            "add",
            "Anouk",
            "--role",
            "nurse",
            "--team",
            "Assen",
            "--team",
            "Emmen",
            "--display-name",
            "Anouk de Vries",
        ],
    ));
    let admin = stdout_line(&thuiswacht(
        url,
        &[
            "admin", "--json", "user", "add", "beheer", "--role", "admin",
        ],
    ));
    let no_team = thuiswacht(url, &["admin", "user", "add", "bram", "--role", "nurse"]);
    let unknown_team = thuiswacht(
        url,
        &[
            "admin",
            "user",
            "add",
            "bram",
            "--role",
            "coordinator",
            "--team",
            "Zwolle",
        ],
    );
    let admin_with_team = thuiswacht(
        url,
        &[
            "admin", "user", "add", "root", "--role", "admin", "--team", "Assen",
        ],
    );
    let taken = thuiswacht(
        url,
        &[
            "admin", "user", "add", "anouk", "--role", "nurse", "--team", "Assen",
        ],
    );
    let bad_name = thuiswacht(
        url,
        &[
            "admin", "user", "add", "a b", "--role", "nurse", "--team", "Assen",
        ],
    );
    let disabled = stdout_line(&thuiswacht(url, &["admin", "user", "disable", "ANOUK"]));
    let listed = stdout_line(&thuiswacht(url, &["admin", "user", "list"]));
    // Assert: the password is printed once and only its hash is stored.
    let store = database.store().await;
    let credentials = store.user_credentials("anouk").await.unwrap().unwrap();
    assert!(credentials.password_hash.starts_with("$argon2id$"));
    assert!(!credentials.password_hash.contains(&password));
    assert!(thuiswacht::auth::password::verify_password(
        &password,
        &credentials.password_hash
    ));
    assert_eq!(credentials.user.display_name, "Anouk de Vries");
    assert_eq!(credentials.user.teams.len(), 2);
    let admin: serde_json::Value = serde_json::from_str(&admin).unwrap();
    assert_eq!(admin["username"], "beheer");
    assert!(admin["password"].as_str().unwrap().len() >= 20);
    assert!(stderr_of(&no_team).contains("needs at least one --team"));
    assert!(stderr_of(&unknown_team).contains("team Zwolle not found"));
    assert!(stderr_of(&admin_with_team).contains("admins belong to no team"));
    assert!(stderr_of(&taken).contains("user anouk already exists"));
    assert!(stderr_of(&bad_name).contains("a username has only"));
    assert_eq!(disabled, "anouk");
    assert!(
        listed.contains("anouk\tnurse\tAssen,Emmen\tAnouk de Vries\tdisabled"),
        "{listed}"
    );
    assert!(
        listed.contains("beheer\tadmin\t\tbeheer\tactive"),
        "{listed}"
    );
    // Each change is in the audit trail, by the command line.
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let actions: Vec<(String, String)> =
        sqlx::query_as("select action, actor_kind from audit_log order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        actions,
        [
            ("user_added".to_owned(), "system".to_owned()),
            ("user_added".to_owned(), "system".to_owned()),
            ("user_disabled".to_owned(), "system".to_owned()),
        ]
    );
}

#[tokio::test]
async fn read_and_observe_tokens_must_name_their_teams() {
    // Arrange
    let database = TestDatabase::create().await;
    let url = &database.url;
    let assen = stdout_line(&thuiswacht(url, &["admin", "team", "add", "Assen"]));
    // Act
    let unscoped = thuiswacht(url, &["admin", "token", "add", "ECD", "--scope", "observe"]);
    let scoped = stdout_line(&thuiswacht(
        url,
        &[
            "admin", "token", "add", "ECD", "--scope", "observe", "--team", "Assen",
        ],
    ));
    let everywhere = stdout_line(&thuiswacht(
        url,
        &[
            "admin",
            "token",
            "add",
            "dashboard",
            "--scope",
            "read",
            "--all-teams",
        ],
    ));
    let gateway_with_team = thuiswacht(
        url,
        &[
            "admin", "token", "add", "gw", "--scope", "ingest", "--team", "Assen",
        ],
    );
    let unknown = thuiswacht(
        url,
        &[
            "admin", "token", "add", "ECD", "--scope", "read", "--team", "Zwolle",
        ],
    );
    // Assert
    assert!(stderr_of(&unscoped).contains("needs --team NAME"));
    assert!(stderr_of(&gateway_with_team).contains("ingest tokens reach no patient data"));
    assert!(stderr_of(&unknown).contains("unknown team Zwolle"));
    let store = database.store().await;
    let find = |secret: String| {
        let store = store.clone();
        async move {
            store
                .find_token(&thuiswacht::api::token_hash(&secret))
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(
        find(scoped).await.teams,
        thuiswacht::store::TeamScope::Teams(vec![assen.parse().unwrap()])
    );
    assert_eq!(
        find(everywhere).await.teams,
        thuiswacht::store::TeamScope::All
    );
}

#[tokio::test]
async fn quarantine_list_shows_what_was_refused() {
    let database = TestDatabase::create().await;
    let store = database.store().await;
    let record = thuiswacht::store::QuarantineRecord {
        received_at: thuiswacht::domain::Timestamp::now(),
        source: "mqtt:thuiswacht/v1/devices/ghost/readings".to_owned(),
        device_id: Some("ghost".to_owned()),
        reason: thuiswacht::domain::RejectReason::UnknownDevice,
        detail: "unknown device ghost".to_owned(),
        raw: b"{}".to_vec(),
        raw_size: 2,
    };
    store.commit_batch(&[], &[record]).await.unwrap();
    let listed = stdout_line(&thuiswacht(&database.url, &["admin", "quarantine", "list"]));
    assert!(
        listed.contains("unknown_device")
            && listed.contains("ghost")
            && listed.contains("unknown device ghost"),
        "{listed}"
    );
    let json = stdout_line(&thuiswacht(
        &database.url,
        &["admin", "--json", "quarantine", "list", "--limit", "5"],
    ));
    let entries: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(entries[0]["reason"], "unknown_device");
}

#[test]
fn check_accepts_the_shipped_folders_and_lists_every_problem_of_a_broken_one() {
    let ok = Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .arg("check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("6 device profiles OK"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"x\"\nexpected_interval_s = 60\n[metrics.mood]\nmin = 1\nmax = 0\n",
    )
    .unwrap();
    let broken = Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .args(["check", "--devices-dir"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(!broken.status.success());
    let errors = String::from_utf8_lossy(&broken.stderr);
    assert!(
        errors.contains("bad.toml: unknown metric \"mood\""),
        "{errors}"
    );
}

#[test]
fn invalid_configuration_is_reported_one_problem_per_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .args(["admin", "team", "list"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("THUISWACHT_MQTT_URL", "http://nope")
        .env("THUISWACHT_BATCH_MAX_ROWS", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(errors.contains("THUISWACHT_BATCH_MAX_ROWS"), "{errors}");
}

#[test]
fn news2_command_scores_each_input_line() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .arg("news2")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"rr\":22,\"spo2\":93,\"on_oxygen\":false,\"sbp\":105,\"pulse\":115,\"acvpu\":\"A\",\"temp\":38.6,\"scale\":1}\n\
              {\"spo2\":88,\"on_oxygen\":true,\"scale\":2}\n",
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["total"], 8);
    assert_eq!(lines[0]["band"], "high");
    assert_eq!(lines[0]["missing"], serde_json::json!([]));
    // Scale 2, 88% on oxygen: SpO2 0, oxygen 2; the rest missing, never complete.
    assert_eq!(lines[1]["total"], 2);
    assert_eq!(lines[1]["subscores"]["air_or_oxygen"], 2);
    assert_eq!(lines[1]["complete"], false);
    assert_eq!(lines[1]["missing"].as_array().unwrap().len(), 5);
}

#[test]
fn replay_writes_one_line_per_patient_hour_from_physionet_files() {
    // Arrange: three real challenge files.
    let source = shared_data().join("physionet2019-sepsis-setB-2000");
    let dir = tempfile::tempdir().unwrap();
    let mut expected_rows = 0;
    for name in ["p100001.psv", "p100002.psv", "p100003.psv"] {
        let text = std::fs::read_to_string(source.join(name))
            .expect("the PhysioNet sample is in ../shared/data");
        expected_rows += text.lines().count() - 1;
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = dir.path().join("out.jsonl");
    // Act
    let output = Command::new(env!("CARGO_BIN_EXE_thuiswacht"))
        .args(["replay", "--format", "physionet2019"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    // Assert
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["patients"], 3);
    assert_eq!(summary["rows"], expected_rows);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), expected_rows);
    assert_eq!(lines[0]["patient"], "p100001");
    assert_eq!(lines[0]["hour"], 0);
    assert_eq!(lines[1]["hour"], 1);
    assert!(lines
        .iter()
        .all(|line| line["urgency_score"].as_f64().unwrap().is_finite()));
}

#[tokio::test]
async fn personal_thresholds_are_set_validated_and_listed_by_version() {
    // Arrange
    let database = TestDatabase::create().await;
    let url = &database.url;
    stdout_line(&thuiswacht(url, &["admin", "team", "add", "Meppel"]));
    let patient = stdout_line(&thuiswacht(
        url,
        &[
            "admin",
            "patient",
            "add",
            "--team",
            "Meppel",
            "--display-name",
            "Meneer Smit",
            "--protocol",
            "default,copd",
        ],
    ));
    let set = |settings: &str, reason: &str| {
        thuiswacht(
            url,
            &[
                "admin",
                "threshold",
                "set",
                "--patient",
                &patient,
                "--rule",
                "copd/spo2_below_target",
                "--settings",
                settings,
                "--author",
                "coördinator Jansen",
                "--reason",
                reason,
            ],
        )
    };

    // Act
    let first = set(r#"{"below": 86, "recover_at": 88}"#, "habitual SpO2 87-89");
    let second = set(
        "{}",
        "back to the protocol after the lung specialist's review",
    );
    let inverted = set(r#"{"recover_at": 80}"#, "typo");
    let unknown_rule = thuiswacht(
        url,
        &[
            "admin",
            "threshold",
            "set",
            "--patient",
            &patient,
            "--rule",
            "heart-failure/weight_gain_1d",
            "--settings",
            "{}",
            "--author",
            "x",
            "--reason",
            "y",
        ],
    );
    let listed = thuiswacht(
        url,
        &[
            "admin",
            "--json",
            "threshold",
            "list",
            "--patient",
            &patient,
        ],
    );

    // Assert
    assert_eq!(stdout_line(&first), "copd/spo2_below_target v1");
    assert_eq!(stdout_line(&second), "copd/spo2_below_target v2");
    assert!(!inverted.status.success());
    let problem = String::from_utf8_lossy(&inverted.stderr);
    assert!(
        problem.contains("recover_at 80 must not be below below 86")
            || problem.contains("recover_at 80"),
        "{problem}"
    );
    assert!(!unknown_rule.status.success());
    assert!(
        String::from_utf8_lossy(&unknown_rule.stderr)
            .contains("does not follow protocol heart-failure"),
        "{}",
        String::from_utf8_lossy(&unknown_rule.stderr)
    );
    let versions: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2, "the refused settings were not stored");
    assert_eq!(versions[0]["settings"]["below"], 86.0);
    assert_eq!(versions[0]["author"], "coördinator Jansen");
    assert_eq!(
        versions[1]["reason"],
        "back to the protocol after the lung specialist's review"
    );
}
