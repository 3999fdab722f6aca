//! Fixture reading and comparison helpers shared by the agreement tests
//! (`lifetimes_agreement.rs`, `families.rs`).
#![allow(dead_code)] // each test binary uses its own subset

use serde_json::Value;

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

pub fn column(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number"))
}

pub fn relative(ours: f64, theirs: f64) -> f64 {
    if ours == theirs {
        0.0
    } else {
        (ours - theirs).abs() / theirs.abs().max(1e-300)
    }
}

pub fn assert_close(what: &str, ours: f64, theirs: f64, tolerance: f64) {
    assert!(
        relative(ours, theirs) <= tolerance,
        "{what}: ours {ours} vs reference {theirs} (rel {:.2e} > {tolerance:.0e})",
        relative(ours, theirs)
    );
}
