//! Time to the next purchase against simulation: among simulated
//! customers alive at the end of calibration (the simulator knows), the
//! number whose next purchase comes within w days against Σ F_i(w), F_i
//! the customer's predicted law "if alive" (Lomax); and, over all
//! customers, the number with a purchase within the window against
//! Σ P_i(purchase within the window). Within 4 standard deviations
//! (Var = Σ F(1−F), customers independent).

use clv_model::{
    simulate_process, Acquisition, BgNbdParams, CustomerSummary, MbgNbdParams, ParetoNbdParams,
    PurchaseParams, PurchaseProcess, SimulatedCustomer, SimulationConfig, TimeResolution,
};

const CALIBRATION: f64 = 365.0;

fn check(truth: PurchaseParams, process: PurchaseProcess, seed: u64) {
    let config = SimulationConfig {
        purchases: BgNbdParams::new(1.0, 1.0, 1.0, 1.0).unwrap(),
        spend: None,
        customers: 10_000,
        calibration_days: CALIBRATION,
        holdout_days: 365.0,
        acquisition: Acquisition::Uniform { window_days: 300.0 },
        resolution: TimeResolution::Continuous,
        seed,
        record_occasions: true,
    };
    let customers = simulate_process(&config, process);
    let [r, alpha, ..] = truth.values();
    for w in [30.0, 90.0, 180.0] {
        // Alive at T: the purchase clock (N1); for Pareto/NBD only those
        // whose lifetime outlasts the purchase would see it, so the
        // comparison is made for BG/NBD and MBG/NBD.
        if !matches!(truth, PurchaseParams::ParetoNbd(_)) {
            let alive = customers.iter().filter(|c| c.alive_at_calibration_end);
            assert_within(alive, w, "alive", |s| {
                let median = truth.next_purchase(s, w).median_days_if_alive;
                let at_median = ((alpha + s.t()) / (alpha + s.t() + median)).powf(r + s.x());
                assert!((at_median - 0.5).abs() < 1e-12, "{at_median}");
                1.0 - ((alpha + s.t()) / (alpha + s.t() + w)).powf(r + s.x())
            });
        }
        // Everybody: a purchase within the window, dropout and death included (N3).
        assert_within(customers.iter(), w, "all", |s| {
            truth.next_purchase(s, w).probability_within_window
        });
    }
}

/// The number of `customers` whose first holdout purchase comes within `w`
/// days against Σ `predicted`, within 4 standard deviations.
fn assert_within<'a>(
    customers: impl Iterator<Item = &'a SimulatedCustomer>,
    w: f64,
    who: &str,
    predicted: impl Fn(&CustomerSummary) -> f64,
) {
    let (mut observed, mut expected, mut variance) = (0.0, 0.0, 0.0);
    for c in customers {
        let p = predicted(&c.summary);
        expected += p;
        variance += p * (1.0 - p);
        let next = c
            .occasions
            .iter()
            .find(|o| o.in_holdout)
            .map(|o| o.day - CALIBRATION);
        observed += f64::from(next.is_some_and(|d| d <= w));
    }
    let z = (observed - expected) / variance.sqrt();
    assert!(
        z.abs() < 4.0,
        "{who}, w = {w}: observed {observed} vs {expected:.1} (z {z:.2})"
    );
}

#[test]
fn next_purchase_times_match_simulated_customers() {
    let bg = BgNbdParams::new(0.8, 30.0, 0.7, 2.2).unwrap();
    check(bg.into(), PurchaseProcess::BgNbd(bg), 61);
    let mbg = MbgNbdParams::new(0.8, 30.0, 0.7, 2.2).unwrap();
    check(mbg.into(), PurchaseProcess::MbgNbd(mbg), 62);
    let pareto = ParetoNbdParams::new(0.8, 30.0, 0.6, 80.0).unwrap();
    check(pareto.into(), PurchaseProcess::ParetoNbd(pareto), 63);
}
