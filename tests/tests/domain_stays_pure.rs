//! The dependency rule, enforced: the `domain` crate must not depend, directly or transitively, on
//! any infrastructure crate. Read from `cargo metadata`, so a new dependency fails the build here.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crate-name prefixes that mean "infrastructure".
const BANNED: &[&str] = &[
    "actix",
    "sea-orm",
    "sea-query",
    "sqlx",
    "redis",
    "deadpool",
    "reqwest",
    "hyper",
    "axum",
    "tokio-postgres",
    "postgres",
    "rusqlite",
    "libsqlite3-sys",
    "moka",
    "tokio",
    "utoipa",
    "argon2",
    "jsonwebtoken",
];

fn metadata() -> Value {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        // Not `--offline`: the metadata of every platform's dependencies is read, and a fresh
        // machine has only downloaded the host's.
        .args(["metadata", "--format-version", "1"])
        .current_dir(workspace)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Names of every crate `domain` pulls in for normal and build use (not dev-dependencies).
fn domain_dependency_closure(metadata: &Value) -> BTreeSet<String> {
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .expect("a resolve graph");
    let by_id: HashMap<&str, &Value> = nodes
        .iter()
        .map(|node| (node["id"].as_str().unwrap_or_default(), node))
        .collect();
    let name_of: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default(),
                p["name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let domain_id = name_of
        .iter()
        .find(|(_, name)| **name == "domain")
        .map(|(id, _)| *id)
        .expect("the domain package");

    let mut seen = BTreeSet::new();
    let mut stack = vec![domain_id];
    while let Some(id) = stack.pop() {
        let Some(node) = by_id.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let not_dev_only = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"].as_str() != Some("dev"));
            let dep_id = dep["pkg"].as_str().unwrap_or_default();
            if not_dev_only
                && seen.insert(name_of.get(dep_id).copied().unwrap_or(dep_id).to_owned())
            {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn the_domain_crate_depends_on_no_infrastructure() {
    let closure = domain_dependency_closure(&metadata());
    assert!(
        closure.contains("serde") && closure.contains("uuid"),
        "the closure was read correctly: {closure:?}"
    );
    let offenders: Vec<&String> = closure
        .iter()
        .filter(|name| BANNED.iter().any(|banned| name.starts_with(banned)))
        .collect();
    assert!(
        offenders.is_empty(),
        "domain depends on infrastructure crates: {offenders:?}"
    );
}

#[test]
fn the_check_would_notice_an_infrastructure_crate() {
    // The same walk from a crate that does depend on infrastructure finds it, so the check above
    // is not vacuous.
    let metadata = metadata();
    let mut renamed = metadata.clone();
    for package in renamed["packages"].as_array_mut().expect("packages") {
        if package["name"] == "adapter-persistence" {
            package["name"] = Value::from("domain");
        } else if package["name"] == "domain" {
            package["name"] = Value::from("domain-original");
        }
    }
    let closure = domain_dependency_closure(&renamed);
    assert!(closure.iter().any(|name| name.starts_with("sea-orm")));
}
