//! Helpers shared by the model's test binaries: fixture reading and
//! comparison for the agreement tests (`lifetimes_agreement.rs`,
//! `families.rs`), and simulated fit inputs (`warm_start.rs`,
//! `family_recovery.rs`).
#![allow(dead_code)] // each test binary uses its own subset

use clv_model::{
    simulate_process, Acquisition, BgNbdFitInput, BgNbdParams, CustomerSummary, PurchaseProcess,
    SimulationConfig, TimeResolution,
};
use serde_json::Value;

/// The fit input of `customers` simulated from `process` over
/// `calibration_days`, acquired uniformly over the first year, with
/// continuous times (so nearly every summary is distinct).
pub fn simulated_input(
    process: PurchaseProcess,
    customers: usize,
    calibration_days: f64,
    seed: u64,
) -> BgNbdFitInput {
    let config = SimulationConfig {
        // Replaced by `process`.
        purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).expect("valid parameters"),
        spend: None,
        customers,
        calibration_days,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform { window_days: 365.0 },
        resolution: TimeResolution::Continuous,
        seed,
        record_occasions: false,
    };
    let summaries: Vec<CustomerSummary> = simulate_process(&config, process)
        .into_iter()
        .map(|c| c.summary)
        .collect();
    BgNbdFitInput::from_summaries(&summaries)
}

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
