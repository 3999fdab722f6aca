//! The large-input path of every purchase family's fit: above
//! `FitOptions::warm_start_above_groups` distinct summaries the fit starts
//! from a fit on a sample of the groups and then takes Newton steps with
//! that sample's Hessian on the full likelihood. With summaries that are
//! nearly all distinct (continuous times, as a million customers with
//! fractional days give), the sample must stay small and the answer must be
//! the one a cold fit (L-BFGS from all parameters 1) finds, to rounding.

use clv_model::{
    fit_family, BgNbdFitInput, BgNbdParams, FitOptions, MbgNbdParams, ParetoNbdParams,
    PurchaseFamily, PurchaseFamilyFit, PurchaseProcess,
};

mod common;

/// `customers` simulated from `process`, continuous times: every summary
/// distinct.
fn distinct_summaries(process: PurchaseProcess, customers: usize) -> BgNbdFitInput {
    common::simulated_input(process, customers, 730.0, 14)
}

fn fit(family: PurchaseFamily, input: &BgNbdFitInput, warm_above: usize) -> PurchaseFamilyFit {
    let options = FitOptions {
        warm_start_above_groups: warm_above,
        ..FitOptions::default()
    };
    fit_family(family, input, &options).unwrap_or_else(|e| panic!("{family}: {e}"))
}

#[test]
fn the_warm_started_fit_of_distinct_summaries_is_the_cold_fit() {
    let processes = [
        PurchaseProcess::BgNbd(BgNbdParams::from_weeks(0.243, 4.414, 0.793, 2.426).unwrap()),
        PurchaseProcess::MbgNbd(MbgNbdParams::from_weeks(0.525, 6.183, 0.891, 1.614).unwrap()),
        PurchaseProcess::ParetoNbd(
            ParetoNbdParams::from_weeks(0.553, 10.58, 0.606, 11.67).unwrap(),
        ),
    ];
    for (family, process) in PurchaseFamily::ALL.into_iter().zip(processes) {
        let input = distinct_summaries(process, 24_000);
        assert!(
            input.groups().len() > 23_000,
            "{family}: {} groups",
            input.groups().len()
        );
        // The warm start on (a quarter of the repeat buyers' groups and at
        // most about 10,000 one-time buyers' groups), then the refinement.
        let warm = fit(family, &input, 10_000);
        let cold = fit(family, &input, usize::MAX);
        assert!(warm.report.converged && cold.report.converged, "{family}");
        let (w, c) = (warm.params.values(), cold.params.values());
        for i in 0..4 {
            assert!(
                ((w[i] - c[i]) / c[i]).abs() < 1e-7,
                "{family} parameter {i}: warm {w:?} vs cold {c:?}"
            );
        }
        let (lw, lc) = (warm.report.log_likelihood, cold.report.log_likelihood);
        assert!(
            (lw - lc).abs() < 1e-9 * lc.abs(),
            "{family}: LL {lw} vs {lc}"
        );
        // The Newton steps replace L-BFGS's 10-25 iterations at full size.
        assert!(
            warm.report.iterations < cold.report.iterations,
            "{family}: {} full-size steps warm, {} cold",
            warm.report.iterations,
            cold.report.iterations
        );
        // Standard errors come from the full Hessian either way.
        let (sw, sc) = (warm.standard_errors.unwrap(), cold.standard_errors.unwrap());
        for i in 0..4 {
            assert!(
                ((sw[i] - sc[i]) / sc[i]).abs() < 1e-4,
                "{family} se {i}: {sw:?} vs {sc:?}"
            );
        }
    }
}
