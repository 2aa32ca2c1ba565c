//! The OpenAPI document at `/api/v1/openapi.json`: it is a valid OpenAPI
//! 3.1 document, and it matches the routes. The walk calls every documented
//! operation against the running app (signed in, with real ids and the
//! document's own examples as bodies) and checks that the answer is one the
//! document lists for it, never the router's "no such route", with a body
//! of the documented shape (checked against its schema); every other
//! method on a documented path is not served (405); and no route in the
//! source is served outside the document.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Client, Method};
use serde_json::Value;
use thuiswacht::alert_book::NewAlert;
use thuiswacht::domain::Timestamp;
use thuiswacht::protocols::Priority;
use thuiswacht::protocols::RuleSettings;
use thuiswacht::store::{NewThresholdProposal, NewUser, Role};
use thuiswacht::triage::urgency::NtsLevel;
use uuid::Uuid;

use crate::helpers::*;

/// The methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The example sign-in of the document; the walk's user signs in with it.
const USERNAME: &str = "anouk";
const PASSWORD: &str = "correct horse battery staple";

/// Operations that answer a documented refusal to the walk's caller, with why.
const EXPECTED_REFUSALS: [(&str, &str, u16, &str); 1] = [(
    "post",
    "/api/v1/patients/{patient_id}/break-glass",
    403,
    "break-glass is for admins; the walk signs in a coordinator",
)];

async fn document(http: &str) -> Value {
    let response = reqwest::get(format!("{http}/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "public, no sign-in");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    response.json().await.unwrap()
}

/// Returns each `$ref` in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target.clone());
            }
            map.values().for_each(|inner| refs(inner, found));
        }
        Value::Array(items) => items.iter().for_each(|inner| refs(inner, found)),
        _ => {}
    }
}

/// Follows a local `$ref` (once).
fn resolved<'a>(document: &'a Value, value: &'a Value) -> Option<&'a Value> {
    match value.get("$ref").and_then(Value::as_str) {
        Some(target) => document.pointer(target.strip_prefix('#')?),
        None => Some(value),
    }
}

/// Returns the `{name}`s of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Returns every problem of an OpenAPI 3.1 document; none when it is valid.
///
/// The document must parse into oas3's OpenAPI 3.1 model with a 3.1.x
/// version, and on top of what that model checks: every `$ref` resolves;
/// operation ids are unique; each path template's parameters are exactly
/// the operation's required path parameters; every response has a
/// description; every error response is an `application/problem+json`
/// problem whose example `type`s are among the document's problem types;
/// and every security requirement names a defined scheme.
fn problems_of(document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = match oas3::from_json(document.to_string()) {
        Ok(spec) => spec,
        Err(error) => return vec![format!("not an OpenAPI 3.1 document: {error}")],
    };
    match spec.validate_version() {
        Ok(version) if version.major == 3 && version.minor == 1 => {}
        Ok(version) => problems.push(format!("version {version}, not 3.1.x")),
        Err(error) => problems.push(format!("version: {error}")),
    }
    let mut targets = Vec::new();
    refs(document, &mut targets);
    for target in targets {
        let found = target
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer));
        if found.is_none() {
            problems.push(format!("$ref {target} does not resolve"));
        }
    }
    let schemes: BTreeSet<String> = document
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .map(|schemes| schemes.keys().cloned().collect())
        .unwrap_or_default();
    let problem_types: BTreeSet<&str> = document
        .pointer("/components/schemas/Problem/properties/type/enum")
        .and_then(Value::as_array)
        .map(|types| types.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if problem_types.is_empty() {
        problems.push("the Problem schema lists no problem types".to_owned());
    }
    let mut operation_ids = BTreeSet::new();
    for (path, method, operation) in spec.operations() {
        let here = format!("{method} {path}");
        match &operation.operation_id {
            Some(id) if !operation_ids.insert(id.clone()) => {
                problems.push(format!("{here}: operationId {id} is not unique"))
            }
            Some(_) => {}
            None => problems.push(format!("{here}: no operationId")),
        }
        if let Err(error) = operation.request_body(&spec) {
            problems.push(format!("{here}: request body: {error}"));
        }
        match operation.parameters(&spec) {
            Ok(parameters) => {
                let declared: BTreeSet<String> = parameters
                    .iter()
                    .filter(|p| p.location == oas3::spec::ParameterIn::Path)
                    .map(|p| {
                        if p.required != Some(true) {
                            problems
                                .push(format!("{here}: path parameter {} not required", p.name));
                        }
                        p.name.clone()
                    })
                    .collect();
                if declared != template_params(&path) {
                    problems.push(format!(
                        "{here}: path parameters {declared:?} do not match the template"
                    ));
                }
            }
            Err(error) => problems.push(format!("{here}: parameters: {error}")),
        }
        let raw = &document["paths"][&path][method.as_str().to_lowercase()];
        let responses = raw["responses"].as_object().cloned().unwrap_or_default();
        if responses.is_empty() {
            problems.push(format!("{here}: no responses"));
        }
        for (status, response) in &responses {
            let Some(response) = resolved(document, response) else {
                continue; // reported with the $refs
            };
            if response["description"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{here} {status}: no description"));
            }
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"].as_object();
                let media: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                if media != ["application/problem+json"] {
                    problems.push(format!("{here} {status}: not a problem detail: {media:?}"));
                    continue;
                }
                let problem = &response["content"]["application/problem+json"];
                if problem["schema"]["$ref"] != "#/components/schemas/Problem" {
                    problems.push(format!("{here} {status}: not the Problem schema"));
                }
                for example in problem["examples"]
                    .as_object()
                    .into_iter()
                    .flat_map(|e| e.values())
                {
                    let kind = example["value"]["type"].as_str().unwrap_or_default();
                    if !problem_types.contains(kind) {
                        problems.push(format!("{here} {status}: unknown problem type {kind:?}"));
                    }
                }
            }
        }
        for requirement in raw["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().into_iter().flat_map(|r| r.keys()) {
                if !schemes.contains(scheme) {
                    problems.push(format!("{here}: undefined security scheme {scheme}"));
                }
            }
        }
    }
    if operation_ids.is_empty() {
        problems.push("no operations".to_owned());
    }
    problems
}

/// Returns where `value` does not match `schema` (JSON Schema as the
/// document uses it: `$ref`, `allOf`, `oneOf`/`anyOf`, `type`, `enum`,
/// `required`, `properties`, `items`); empty when it matches.
fn mismatches(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let Some(schema) = resolved(document, schema) else {
        return vec![format!("{at}: unresolved {schema}")];
    };
    let mut found = Vec::new();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        found.extend(mismatches(document, part, value, at));
    }
    let alternatives: Vec<&Value> = ["oneOf", "anyOf"]
        .iter()
        .filter_map(|key| schema[*key].as_array())
        .flatten()
        .collect();
    if !alternatives.is_empty()
        && !alternatives
            .iter()
            .any(|alternative| mismatches(document, alternative, value, at).is_empty())
    {
        found.push(format!("{at}: matches none of the alternatives: {value}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let is = |kind: &str| match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|kind| is(kind)) {
        found.push(format!("{at}: {value} is not of type {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            found.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Value::Object(members) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !members.contains_key(name) {
                found.push(format!("{at}: lacks the required {name}"));
            }
        }
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(member) = members.get(name) {
                found.extend(mismatches(
                    document,
                    property,
                    member,
                    &format!("{at}.{name}"),
                ));
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            found.extend(mismatches(
                document,
                item_schema,
                item,
                &format!("{at}[{index}]"),
            ));
        }
    }
    found
}

/// The documented operations: (method, path) → operation.
fn operations(document: &Value) -> BTreeMap<(String, String), Value> {
    let mut found = BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.insert((method.to_owned(), path.clone()), operation.clone());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_a_valid_openapi_3_1_document() {
    // Arrange
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;

    // Act
    let document = document(&app.http).await;

    // Assert: valid, with the security schemes and problem types of the API.
    assert_eq!(problems_of(&document), Vec::<String>::new());
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], "thuiswacht_session");
    assert_eq!(schemes["csrf_token"]["in"], "header");
    assert_eq!(schemes["csrf_token"]["name"], "X-CSRF-Token");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let types: Vec<&str> = document["components"]["schemas"]["Problem"]["properties"]["type"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types, thuiswacht::api::PROBLEM_TYPES);
    // A state-changing call by cookie needs the CSRF header with it.
    let claim = &document["paths"]["/api/v1/alerts/{alert_id}/claim"]["post"];
    assert_eq!(
        claim["security"],
        serde_json::json!([{"session_cookie": [], "csrf_token": []}])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_document_fails_the_validation() {
    // Arrange: the real document, broken four ways.
    let document = serde_json::to_value(thuiswacht::api::openapi::openapi()).unwrap();
    assert_eq!(problems_of(&document), Vec::<String>::new());
    let mut old_version = document.clone();
    old_version["openapi"] = "3.0.3".into();
    let mut missing_schema = document.clone();
    missing_schema["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("Alert");
    let mut renamed_param = document.clone();
    let paths = renamed_param["paths"].as_object_mut().unwrap();
    let item = paths.remove("/api/v1/alerts/{alert_id}").unwrap();
    paths.insert("/api/v1/alerts/{id}".to_owned(), item);
    let mut not_a_document = document.clone();
    not_a_document["paths"] = "everything".into();
    let mut plain_error = document.clone();
    plain_error["paths"]["/readyz"]["get"]["responses"]["503"] =
        serde_json::json!({"description": "down", "content": {"text/plain": {}}});

    // Act and assert
    for (what, broken) in [
        ("an OpenAPI 3.0 version", old_version),
        ("a missing schema", missing_schema),
        ("a path parameter that does not match", renamed_param),
        ("paths that are not a map", not_a_document),
        ("an error that is not a problem detail", plain_error),
    ] {
        let problems = problems_of(&broken);
        assert!(!problems.is_empty(), "{what} passed the validation");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_answers_as_documented() {
    // Arrange: a coordinator of Assen (the document's example sign-in), a
    // patient with the blood-pressure monitor of the document's examples,
    // and a gateway's ingest token. Threshold proposals to decide on are
    // another coordinator's (nobody approves their own).
    let database = TestDatabase::create().await;
    let mut settings = test_settings(&database.url, &unique_topic_root());
    settings.triage_enabled = false;
    let app = TestApp::spawn(settings).await;
    let store = &app.store;
    let patient = register_devices(store, &[("bpm-0001", "bp-monitor")]).await;
    let team = store.patient(patient).await.unwrap().unwrap().team;
    store
        .add_user(&NewUser {
            id: Uuid::new_v4(),
            username: USERNAME.to_owned(),
            display_name: "Anouk".to_owned(),
            role: Role::Coordinator,
            password_hash: thuiswacht::auth::password::hash_password(PASSWORD).unwrap(),
            teams: vec![team],
        })
        .await
        .unwrap();
    let ingest_token = ingest_token(store).await;
    let http = app.http.clone();
    let document = document(&http).await;
    let operations = operations(&document);
    let client = Client::builder().cookie_store(true).build().unwrap();
    let signed_in: Value = client
        .post(format!("{http}/api/v1/session"))
        .json(&serde_json::json!({"username": USERNAME, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut csrf = signed_in["csrf_token"].as_str().unwrap().to_owned();
    // Signing in again and out come last: they change the session.
    let mut order: Vec<&(String, String)> = operations.keys().collect();
    order.sort_by_key(|(method, path)| {
        (
            path == "/api/v1/session" && method != "get",
            method == "delete",
        )
    });

    // Act and assert: each operation in turn.
    let mut refusals = Vec::new();
    let mut checked_bodies = 0;
    for (index, key) in order.into_iter().enumerate() {
        let (method, path) = key;
        let operation = &operations[key];
        let here = format!("{} {path}", method.to_uppercase());
        let mut url = path.clone();
        for name in template_params(path) {
            let value = match name.as_str() {
                // A fresh proposal per operation, so that each decision applies.
                "proposal_id" => {
                    let proposal = store
                        .add_threshold_proposal(&NewThresholdProposal {
                            patient_id: patient,
                            rule_key: "default/fever".to_owned(),
                            settings: serde_json::from_str::<RuleSettings>(r#"{"above": 38.6}"#)
                                .unwrap(),
                            valid_until: None,
                            review_by: chrono::Utc::now().date_naive() + chrono::Days::new(90),
                            author: "dirk".to_owned(),
                            reason: "loopt warm".to_owned(),
                            created_at: Timestamp::now(),
                        })
                        .await
                        .unwrap();
                    proposal.id.to_string()
                }
                "patient_id" => patient.to_string(),
                // A fresh alert per operation, so that each action applies.
                "alert_id" => {
                    let now = Timestamp::now();
                    let (alert, _) = store
                        .raise_alert(&NewAlert {
                            patient_id: patient,
                            rule_key: format!("default/walk_{index}"),
                            priority: Priority::Medium,
                            nts: NtsLevel::U3,
                            score: 2000.0,
                            explanation: serde_json::json!({"factors": []}),
                            at: now,
                            raised_at: now,
                            response_minutes: 240,
                        })
                        .await
                        .unwrap();
                    alert.id.to_string()
                }
                "version" => "0".to_owned(),
                // A fresh backtest per operation.
                "job_id" => {
                    let started: Value = client
                        .post(format!("{http}/api/v1/protocols/default/preview"))
                        .header("X-CSRF-Token", &csrf)
                        .json(
                            &serde_json::json!({"protocol": thuiswacht::example_protocol_json!()}),
                        )
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    started["id"].as_str().unwrap().to_owned()
                }
                _ => operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == name.as_str())
                    .and_then(|p| p["example"].as_str())
                    .unwrap_or_else(|| panic!("{here}: no example for {name}"))
                    .to_owned(),
            };
            url = url.replace(&format!("{{{name}}}"), &value);
        }
        let mut body = operation
            .pointer("/requestBody/content/application~1json/example")
            .cloned();
        if method == "put" && path == "/api/v1/protocols/{protocol_id}" {
            // Based on the version in force, whatever ran before.
            let current: Value = client
                .get(format!("{http}/api/v1/protocols/default"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(body) = &mut body {
                body["protocol"]["version"] = current["version"].clone();
            }
        }
        if path.ends_with("/snooze") {
            // The example's fixed time has passed; snooze for half an hour.
            let until = chrono::Utc::now() + chrono::Duration::minutes(30);
            body = Some(serde_json::json!({"until": until.to_rfc3339()}));
        }
        if path.ends_with("/thresholds") {
            // The example's review date may have passed; review in 90 days.
            if let Some(body) = body.as_mut() {
                let review_by = chrono::Utc::now().date_naive() + chrono::Days::new(90);
                body["review_by"] = review_by.to_string().into();
            }
        }
        // The credentials the document asks for: the session (with the CSRF
        // token for a change) where allowed, else a bearer token.
        let requirements = operation["security"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let by_cookie = requirements.is_empty()
            || requirements.iter().any(|r| {
                r.get("session_cookie").is_some() || r.as_object().is_some_and(|r| r.is_empty())
            });
        let mut request = client.request(
            Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
            format!("{http}{url}"),
        );
        if by_cookie {
            request = request.header("X-CSRF-Token", &csrf);
        } else {
            let scopes = &requirements[0]["bearer"];
            assert_eq!(scopes, &serde_json::json!(["ingest"]), "{here}");
            request = request.bearer_auth(&ingest_token);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let is_problem = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value == "application/problem+json");
        let answer: Value = if path.ends_with("/stream") {
            Value::Null // an endless stream: the status and headers are the answer
        } else {
            let text = response.text().await.unwrap();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        assert!(
            !(status == 404 && answer["type"] == "urn:thuiswacht:problem:no-such-route"),
            "{here} is documented but not served"
        );
        assert_ne!(
            status, 405,
            "{here} is documented but its method is not served"
        );
        assert!(
            operation["responses"].get(status.to_string()).is_some(),
            "{here} answered {status}, which the document does not list: {answer}"
        );
        // The answer has the documented shape.
        let documented = resolved(&document, &operation["responses"][status.to_string()]).unwrap();
        if let Some(schema) = documented.pointer("/content/application~1json/schema") {
            if status < 300 && !path.ends_with("openapi.json") {
                let found = mismatches(&document, schema, &answer, "body");
                assert!(
                    found.is_empty(),
                    "{here} {status} does not match its schema: {found:#?}\n{answer}"
                );
                checked_bodies += 1;
            }
        }
        if let Some(schema) = documented.pointer("/content/application~1problem+json/schema") {
            let found = mismatches(&document, schema, &answer, "problem");
            assert!(found.is_empty(), "{here} {status}: {found:#?}");
        }
        if status >= 400 {
            assert!(is_problem, "{here} {status} is not a problem detail");
            refusals.push((method.as_str(), path.as_str(), status));
        }
        if let Some(token) = answer["csrf_token"].as_str() {
            csrf = token.to_owned();
        }
    }
    let expected: Vec<(&str, &str, u16)> = EXPECTED_REFUSALS
        .iter()
        .map(|(method, path, status, _why)| (*method, *path, *status))
        .collect();
    assert_eq!(refusals, expected, "every other operation succeeds");
    assert!(
        checked_bodies >= 15,
        "JSON answers checked against their schemas: {checked_bodies}"
    );

    // Every method a documented path does not list is not served.
    let anonymous = Client::new();
    for path in document["paths"].as_object().unwrap().keys() {
        let url = path
            .replace("{patient_id}", &patient.to_string())
            .replace("{alert_id}", &Uuid::new_v4().to_string())
            .replace("{proposal_id}", "1")
            .replace("{device_id}", "bpm-0001");
        for method in ["get", "post", "put", "patch", "delete"] {
            if operations.contains_key(&(method.to_owned(), path.clone())) {
                continue;
            }
            let status = anonymous
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    format!("{http}{url}"),
                )
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(
                status,
                405,
                "{} {path} is served but not documented",
                method.to_uppercase()
            );
        }
    }
    // A path no route serves is told apart from a resource that does not exist.
    let missing = anonymous
        .get(format!("{http}/api/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["type"], "urn:thuiswacht:problem:no-such-route");
    app.stop().await;
}

/// Returns the path of each `.route("…"` in the Rust files under `dir`.
fn source_routes(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_routes(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices(".route(") {
                let rest = text[at + ".route(".len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"') {
                    if let Some((route, _)) = literal.split_once('"') {
                        found.push((path.display().to_string(), route.to_owned()));
                    }
                }
            }
        }
    }
}

#[test]
fn no_api_route_is_added_outside_the_document() {
    // Arrange: the paths of the document, and every route written out in
    // the source (the documented ones come from `routes!`, not `.route`).
    let document = serde_json::to_value(thuiswacht::api::openapi::openapi()).unwrap();
    let documented: BTreeSet<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut routes = Vec::new();
    source_routes(&repo_path("src"), &mut routes);

    // Assert
    assert!(
        routes.iter().any(|(_, route)| route == "/login"),
        "the scan finds routes: {routes:?}"
    );
    for (file, route) in &routes {
        let api = route.starts_with("/api/")
            || ["/healthz", "/readyz", "/metrics"].contains(&route.as_str());
        assert!(
            !api || documented.contains(route.as_str()),
            "{file} serves {route} without an operation in the OpenAPI document"
        );
    }
    for path in [
        "/api/v1/worklist",
        "/api/v1/openapi.json",
        "/healthz",
        "/api/v1/session",
    ] {
        assert!(documented.contains(path), "{path} is documented");
    }
}

#[test]
fn the_body_check_finds_an_answer_of_another_shape() {
    // Arrange: the Alert schema, and an alert as the API serializes it.
    let document = serde_json::to_value(thuiswacht::api::openapi::openapi()).unwrap();
    let schema = serde_json::json!({"$ref": "#/components/schemas/Alert"});
    let now = Timestamp::now();
    let alert = NewAlert {
        patient_id: Uuid::new_v4(),
        rule_key: "default/fever".to_owned(),
        priority: Priority::Medium,
        nts: NtsLevel::U3,
        score: 2000.0,
        explanation: serde_json::json!({"factors": []}),
        at: now,
        raised_at: now,
        response_minutes: 240,
    }
    .open(Uuid::new_v4());
    let good = serde_json::to_value(&alert).unwrap();

    // Act and assert
    assert_eq!(
        mismatches(&document, &schema, &good, "alert"),
        Vec::<String>::new()
    );
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("respond_by");
    let mut wrong_type = good.clone();
    wrong_type["opened_at"] = "2026-12-07T06:00:00Z".into();
    let mut unknown_status = good.clone();
    unknown_status["status"] = "sleeping".into();
    for (what, bad) in [
        ("a missing member", missing),
        ("a time as text", wrong_type),
        ("an unknown status", unknown_status),
    ] {
        assert!(
            !mismatches(&document, &schema, &bad, "alert").is_empty(),
            "{what} passed the check"
        );
    }
}
