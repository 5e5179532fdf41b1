//! The files under `deploy/` query only what the service exports: every metric name and every
//! label matched in the Grafana dashboard and the Prometheus rules appears in `/metrics` of a
//! running app (Redis backend, L1 on) after some traffic. `promtool check rules` and
//! `promtool test rules` run in scripts/test.sh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Value};

use crate::support::spawn_app_with;

/// Series Prometheus makes itself, not the service.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];
/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Each exported series name with the label names it carries.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_string()).or_default();
        if let Some(rest) = line[name_end..].strip_prefix('{') {
            let inside = &rest[..rest.find('}').expect("closing brace")];
            for pair in inside.split(',').filter(|p| !p.is_empty()) {
                labels.insert(pair.split('=').next().expect("label").to_string());
            }
        }
    }
    series
}

/// The metric names a PromQL expression uses, each with the label names matched in its `{}`.
/// Only names of the service's families (and Prometheus' own `up`) count: functions, keywords
/// and label names outside braces are not metrics.
fn referenced(expr: &str) -> Vec<(String, Vec<String>)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let after = &rest[start..];
        let end = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        let name = &after[..end];
        let mut tail = &after[end..];
        let mut labels = Vec::new();
        if let Some(inside) = tail.strip_prefix('{') {
            let close = inside.find('}').expect("closing brace");
            for matcher in inside[..close].split(',') {
                let label = matcher.split(['=', '!']).next().expect("label").trim();
                labels.push(label.to_string());
            }
            tail = &inside[close + 1..];
        }
        let metric = ["cache_", "http_", "redis_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || PROMETHEUS_SERIES.contains(&name);
        if metric {
            found.push((name.to_string(), labels));
        }
        // Skip quoted strings, so label values are never read as names.
        rest = tail;
        if let Some(stripped) = rest.strip_prefix('"') {
            rest = &stripped[stripped.find('"').map_or(0, |i| i + 1)..];
        }
    }
    found
}

/// Every `expr` string anywhere in a JSON document.
fn expressions(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => expressions(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| expressions(item, into)),
        _ => {}
    }
}

fn deploy_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn expressions_are_read_as_metric_names_and_matched_labels() {
    let found = referenced(
        r#"sum by (le) (rate(http_request_duration_seconds_bucket{route="/x",status=~"5.."}[5m])) / up{job="a"}"#,
    );
    assert_eq!(
        found,
        vec![
            (
                "http_request_duration_seconds_bucket".to_string(),
                vec!["route".to_string(), "status".to_string()]
            ),
            ("up".to_string(), vec!["job".to_string()]),
        ]
    );
}

#[tokio::test]
async fn the_dashboard_and_alert_rules_use_only_metrics_the_service_exports() {
    let app = spawn_app_with(|settings| settings.cache.l1_max_bytes = 1024 * 1024).await;
    let item = app.create_item(json!({"name": "pen", "price": 1.0})).await;
    for _ in 0..3 {
        app.get(&format!("/items/{}", item["id"])).await;
    }
    app.get("/items/999999").await;
    let exported = exported(&app.get("/metrics").await.text().await.expect("text"));

    let mut uses = Vec::new();
    let dashboard: Value =
        serde_json::from_str(&deploy_file("grafana/warp-redis-cache.json")).expect("JSON");
    expressions(&dashboard, &mut uses);
    let panels = dashboard["panels"].as_array().expect("panels").len();
    assert!(uses.len() >= panels, "every panel queries something");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&deploy_file("prometheus/alerts.yml")).expect("YAML");
    let rules = serde_json::to_value(rules).expect("as JSON");
    let before = uses.len();
    expressions(&rules, &mut uses);
    assert!(uses.len() - before >= 5, "the alert rules were read");

    let mut unknown = Vec::new();
    for expr in &uses {
        let names = referenced(expr);
        assert!(!names.is_empty(), "no metric found in {expr:?}");
        for (name, labels) in names {
            if PROMETHEUS_SERIES.contains(&name.as_str()) {
                continue;
            }
            let Some(known) = exported.get(&name) else {
                unknown.push(format!("metric {name}"));
                continue;
            };
            for label in labels {
                if !known.contains(&label) && !TARGET_LABELS.contains(&label.as_str()) {
                    unknown.push(format!("label {label} of {name}"));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}\nexported: {:?}",
        exported.keys().collect::<Vec<_>>()
    );
}
