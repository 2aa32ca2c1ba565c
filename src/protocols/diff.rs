//! What differs between two versions of a protocol, field by field: for the
//! version comparison on the protocols page and in the API.

use serde::Serialize;
use serde_json::{Map, Value};

use super::Protocol;

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Change {
    /// The rule id, or `None` for a field of the protocol itself.
    pub rule: Option<String>,
    /// The field (`response_targets.high`, `above`, …); `rule` when the
    /// whole rule was added or removed.
    pub field: String,
    /// The value before (`null`: not set, or the rule did not exist).
    pub before: Value,
    /// The value after (`null`: not set, or the rule was removed).
    pub after: Value,
}

/// Returns every difference from `before` to `after`, protocol fields
/// first, then rules in the order of `after` (removed rules last).
pub fn compare(before: &Protocol, after: &Protocol) -> Vec<Change> {
    let mut changes = Vec::new();
    let top = |protocol: &Protocol| {
        let mut map = Map::new();
        map.insert("name".into(), Value::from(protocol.name.clone()));
        map.insert(
            "description".into(),
            Value::from(protocol.description.clone()),
        );
        map.insert("news2_scale".into(), Value::from(protocol.news2_scale));
        for (priority, minutes) in &protocol.response_targets {
            let key = serde_json::to_value(priority)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default();
            map.insert(format!("response_targets.{key}"), Value::from(*minutes));
        }
        map
    };
    fields(None, &top(before), &top(after), &mut changes);
    let rule_map = |rule: &super::Rule| match serde_json::to_value(rule) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for rule in &after.rules {
        match before.rules.iter().find(|old| old.id == rule.id) {
            Some(old) => fields(
                Some(&rule.id),
                &rule_map(old),
                &rule_map(rule),
                &mut changes,
            ),
            None => changes.push(Change {
                rule: Some(rule.id.clone()),
                field: "rule".to_owned(),
                before: Value::Null,
                after: Value::Object(rule_map(rule)),
            }),
        }
    }
    for old in &before.rules {
        if !after.rules.iter().any(|rule| rule.id == old.id) {
            changes.push(Change {
                rule: Some(old.id.clone()),
                field: "rule".to_owned(),
                before: Value::Object(rule_map(old)),
                after: Value::Null,
            });
        }
    }
    changes
}

/// Pushes a change per key whose value differs (a missing key is `null`).
fn fields(
    rule: Option<&String>,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    changes: &mut Vec<Change>,
) {
    let mut keys: Vec<&String> = after.keys().collect();
    keys.extend(before.keys().filter(|key| !after.contains_key(*key)));
    for key in keys {
        let old = before.get(key).unwrap_or(&Value::Null);
        let new = after.get(key).unwrap_or(&Value::Null);
        if old != new {
            changes.push(Change {
                rule: rule.cloned(),
                field: key.clone(),
                before: old.clone(),
                after: new.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::protocols::{load_dir, Priority};

    #[test]
    fn changed_added_and_removed_fields_and_rules_are_listed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts");
        let before = load_dir(&dir).unwrap().remove("default").unwrap();
        let mut after = before.clone();
        after.response_targets.insert(Priority::High, 30);
        let fever = after.rules.iter_mut().find(|r| r.id == "fever").unwrap();
        fever.above = Some(38.5);
        fever.for_minutes = 30;
        let mut added = fever.clone();
        added.id = "fever_high".to_owned();
        after.rules.push(added);
        let removed = after.rules.remove(0).id;

        let changes = compare(&before, &after);

        let find = |rule: Option<&str>, field: &str| {
            changes
                .iter()
                .find(|c| c.rule.as_deref() == rule && c.field == field)
                .unwrap_or_else(|| panic!("no change {rule:?} {field} in {changes:#?}"))
        };
        assert_eq!(find(None, "response_targets.high").after, Value::from(30));
        assert_eq!(find(Some("fever"), "above").before, Value::from(38.0));
        assert_eq!(find(Some("fever"), "above").after, Value::from(38.5));
        assert_eq!(find(Some("fever"), "for_minutes").after, Value::from(30));
        assert!(find(Some("fever_high"), "rule").before.is_null());
        assert!(find(Some(&removed), "rule").after.is_null());
        assert_eq!(changes.len(), 5, "{changes:#?}");
        assert!(compare(&before, &before).is_empty());
    }
}
