//! Special functions the models need, all in log space: ln Γ, ψ (digamma),
//! ln B and ln ₂F₁ for real parameters and `z ∈ [0, 1)`.
//!
//! Owns numerics only; knows nothing of customers or models.
//!
//! # Method and accuracy
//! - `ln_gamma` is `libm::lgamma_r` (the FreeBSD/musl implementation, errors
//!   of a few ulp for positive arguments).
//! - `digamma` shifts its argument above 10 with ψ(x) = ψ(x+1) − 1/x and then
//!   uses the asymptotic series through the x⁻¹² term (Abramowitz & Stegun 6.3.18):
//!   absolute error below 1e-14.
//! - `ln_hyp2f1` sums the Gauss series Σ (a)ₙ(b)ₙ/((c)ₙ n!) zⁿ (A&S 15.1.1)
//!   with a running scale (the partial sum and current term are kept as
//!   `value · e^scale`, so terms of 1e300 and beyond cannot overflow), and
//!   applies Euler's transformation (A&S 15.3.3)
//!   ₂F₁(a,b;c;z) = (1−z)^(c−a−b) ₂F₁(c−a,c−b;c;z) when c−a−b < 0: the
//!   transformed series then converges at z = 1 and its terms stay small,
//!   which is what keeps x in the hundreds and z → 1 tractable (x = 300,
//!   z = 0.99 needs a few hundred terms instead of tens of thousands of
//!   terms of size 1e300). The series stops once the remaining tail,
//!   bounded geometrically by the current term ratio, is below 2⁻⁵⁵ of the
//!   sum. Rounding grows with the number of terms N as about N·ε relative;
//!   the tests compare with mpmath at 50 digits to 1e-12 relative.

pub use crate::prec::MAX_SERIES_TERMS;
use crate::prec::{SERIES_RESCALE_ABOVE as RESCALE_ABOVE, SERIES_TAIL_TOLERANCE as TAIL_TOLERANCE};

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma_r(x).0
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a+b), for a, b > 0.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ψ(x) = d ln Γ(x)/dx for x > 0 (A&S 6.3.5 recurrence, 6.3.18 asymptotics).
pub fn digamma(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return f64::NAN;
    }
    let mut x = x;
    let mut shift = 0.0;
    while x < 10.0 {
        shift -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let tail = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2
                        * (1.0 / 252.0
                            - inv2
                                * (1.0 / 240.0
                                    - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32760.0))))));
    shift + x.ln() - 0.5 * inv - tail
}

/// ψ₁(x) = d²ln Γ(x)/dx² for x > 0 (A&S 6.4.6 recurrence, 6.4.12
/// asymptotics): hand-rolled like [`digamma`], the workspace's crates have
/// no polygamma; checked against mpmath's `polygamma(1, x)` in a test.
pub fn trigamma(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return f64::NAN;
    }
    let mut x = x;
    let mut shift = 0.0;
    while x < 16.0 {
        shift += 1.0 / (x * x);
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // 1/x + 1/(2x²) + Σ B₂ₖ/x^(2k+1): 1/6, −1/30, 1/42, −1/30, 5/66, −691/2730.
    let tail = inv
        * inv2
        * (1.0 / 6.0
            - inv2
                * (1.0 / 30.0
                    - inv2
                        * (1.0 / 42.0
                            - inv2
                                * (1.0 / 30.0 - inv2 * (5.0 / 66.0 - inv2 * (691.0 / 2730.0))))));
    shift + inv + 0.5 * inv2 + tail
}

/// ln(e^u + e^v) without overflow.
pub fn log_sum_exp(u: f64, v: f64) -> f64 {
    let (hi, lo) = if u >= v { (u, v) } else { (v, u) };
    if hi == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Neumaier's compensated sum: the rounding error of adding many terms
/// stays near one ulp of the total instead of growing with √n. Used for the
/// log-likelihoods, whose rounding noise would otherwise stall the line
/// search short of the optimum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// Adds one term.
    #[inline]
    pub fn add(&mut self, value: f64) {
        let total = self.sum + value;
        if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - total) + value;
        } else {
            self.compensation += (value - total) + self.sum;
        }
        self.sum = total;
    }

    /// The sum.
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// A series sum held as `value · e^log_scale`, so that it cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledSum {
    /// The sum divided by `e^log_scale`.
    pub value: f64,
    /// Natural log of the scale factor.
    pub log_scale: f64,
}

impl ScaledSum {
    /// ln |sum|.
    pub fn ln_abs(&self) -> f64 {
        self.value.abs().ln() + self.log_scale
    }

    /// The sum as a plain number (may overflow to ±∞).
    pub fn to_f64(&self) -> f64 {
        self.value * self.log_scale.exp()
    }
}

/// A series being summed term by term (see [`sum_ratio_series`]).
struct RunningSum {
    term: f64,
    sum: f64,
    log_scale: f64,
}

/// What one more term did to a [`RunningSum`].
enum Step {
    /// Not converged yet.
    Going,
    /// Converged or terminated: the sum.
    Done(ScaledSum),
    /// Became non-finite.
    Failed,
}

impl RunningSum {
    fn new(first: f64) -> Self {
        Self {
            term: first,
            sum: first,
            log_scale: 0.0,
        }
    }

    fn scaled(&self) -> ScaledSum {
        ScaledSum {
            value: self.sum,
            log_scale: self.log_scale,
        }
    }

    /// Adds the next term, tₙ₊₁ = tₙ · `rho_n`, and tells whether the sum
    /// is done: the stopping rule of [`sum_ratio_series`].
    fn step(&mut self, rho_n: f64, z: f64) -> Step {
        if rho_n == 0.0 {
            return Step::Done(self.scaled());
        }
        self.term *= rho_n;
        self.sum += self.term;
        if self.term.abs() > RESCALE_ABOVE || self.sum.abs() > RESCALE_ABOVE {
            self.term /= RESCALE_ABOVE;
            self.sum /= RESCALE_ABOVE;
            self.log_scale += RESCALE_ABOVE.ln();
        }
        if !self.sum.is_finite() {
            return Step::Failed;
        }
        let rho = rho_n.abs().max(z);
        if rho < 1.0 && self.term.abs() * rho <= TAIL_TOLERANCE * (1.0 - rho) * self.sum.abs() {
            Step::Done(self.scaled())
        } else {
            Step::Going
        }
    }
}

/// Σ_{n≥0} tₙ with t₀ = `first` and tₙ₊₁ = tₙ · `ratio(n)`, where |ratio(n)|
/// tends to `z` < 1 and is eventually monotone (true of every
/// hypergeometric-type series here). Stops when the geometric bound on the
/// tail, |tₙ|·ρ/(1−ρ) with ρ = max(|ratio(n)|, z), is below 2⁻⁵⁵·|sum|, or
/// when the series terminates (a ratio of exactly 0). `None` if it has not
/// converged after [`MAX_SERIES_TERMS`] terms or became non-finite.
pub fn sum_ratio_series(
    first: f64,
    z: f64,
    mut ratio: impl FnMut(u64) -> f64,
) -> Option<ScaledSum> {
    let mut running = RunningSum::new(first);
    for n in 0..MAX_SERIES_TERMS {
        match running.step(ratio(n), z) {
            Step::Going => {}
            Step::Done(sum) => return Some(sum),
            Step::Failed => return None,
        }
    }
    None
}

/// Several [`sum_ratio_series`] at once whose ratios share a factor:
/// series k has t₀ = `firsts[k]` and ratio `coefficient(n) · zs[k]`. The
/// coefficient (a division, in the series here) is computed once per term
/// for all of them, which is the point: the scores sum one such series per
/// month of the horizon. Each series takes the same steps
/// ([`RunningSum::step`]) as [`sum_ratio_series`] would on its own with
/// the ratio `coefficient(n) · zs[k]`, so every sum is bit-identical to it.
pub fn sum_ratio_series_sharing(
    firsts: &[f64],
    zs: &[f64],
    mut coefficient: impl FnMut(u64) -> f64,
) -> Vec<Option<ScaledSum>> {
    // Each series with its result once it has one (`Some(None)`: failed).
    let mut series: Vec<(RunningSum, Option<Option<ScaledSum>>)> = firsts
        .iter()
        .map(|&first| (RunningSum::new(first), None))
        .collect();
    let mut running = series.len();
    for n in 0..MAX_SERIES_TERMS {
        if running == 0 {
            break;
        }
        let shared = coefficient(n);
        for ((sum, result), &z) in series.iter_mut().zip(zs) {
            if result.is_some() {
                continue;
            }
            *result = match sum.step(shared * z, z) {
                Step::Going => continue,
                Step::Done(s) => Some(Some(s)),
                Step::Failed => Some(None),
            };
            running -= 1;
        }
    }
    // A series still running after MAX_SERIES_TERMS terms did not converge.
    series
        .into_iter()
        .map(|(_, result)| result.flatten())
        .collect()
}

/// ln of the Gauss series Σ (a)ₙ(b)ₙ/((c)ₙ n!) zⁿ, which must be positive.
/// The terms after the first are summed on their own so that values close
/// to 1 keep their relative accuracy in the logarithm (ln_1p).
fn ln_gauss_series(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let first = a * b / c * z;
    if first == 0.0 {
        return 0.0;
    }
    let rest = sum_ratio_series(first, z, |n| {
        let n = (n + 1) as f64;
        (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z
    });
    match rest {
        Some(s) if s.log_scale == 0.0 && s.value > -1.0 => s.value.ln_1p(),
        Some(s) if s.log_scale > 0.0 && s.value > 0.0 => {
            (s.value + (-s.log_scale).exp()).ln() + s.log_scale
        }
        _ => f64::NAN,
    }
}

/// ln ₂F₁(a, b; c; z) for a, b, c > 0 and 0 ≤ z < 1 (then every term of the
/// Gauss series is positive and the value is ≥ 1).
///
/// # Formula
/// A&S 15.1.1 directly when c − a − b ≥ 0; otherwise Euler's transformation
/// A&S 15.3.3, ln ₂F₁ = (c−a−b)·ln(1−z) + ln ₂F₁(c−a, c−b; c; z). See the
/// module documentation for the accuracy. Returns NaN outside the domain or
/// if the series does not converge within [`MAX_SERIES_TERMS`] terms.
pub fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let domain = a > 0.0 && b > 0.0 && c > 0.0 && (0.0..1.0).contains(&z);
    if !domain || !(a + b + c + z).is_finite() {
        return f64::NAN;
    }
    let excess = c - a - b;
    if excess < 0.0 {
        excess * (-z).ln_1p() + ln_gauss_series(c - a, c - b, c, z)
    } else {
        ln_gauss_series(a, b, c, z)
    }
}

/// ln ₂F₁ by the plain Gauss series with no transformation (scaled, so it
/// does not overflow, but slow for z near 1 and large parameters). Kept as
/// an independent cross-check of [`ln_hyp2f1`].
pub fn ln_hyp2f1_direct(a: f64, b: f64, c: f64, z: f64) -> f64 {
    ln_gauss_series(a, b, c, z)
}

#[cfg(test)]
mod tests {
    #[test]
    fn trigamma_matches_mpmath() {
        // mpmath 1.3.0 polygamma(1, x) at 30 digits, rounded to f64.
        for (x, reference) in [
            (0.01, 10001.621213528313),
            (0.5, 4.934802200544679),
            (1.0, 1.6449340668482264),
            (2.5, 0.49035775610023485),
            (9.99, 0.10527695014824179),
            (10.0, 0.10516633568168575),
            (123.4, 0.008136651610865263),
            (5000.0, 0.00020002000133333332),
        ] {
            let ours = super::trigamma(x);
            assert!(
                (ours / reference - 1.0).abs() < 1e-14,
                "{x}: {ours} vs {reference}"
            );
        }
    }

    use super::*;

    const TIGHT: f64 = 1e-13;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for (n, fact) in [(1.0, 1.0), (5.0, 24.0), (11.0, 3_628_800.0_f64)] {
            assert!(rel(ln_gamma(n), fact.ln()).abs() < TIGHT || fact == 1.0);
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < TIGHT);
    }

    #[test]
    fn digamma_matches_known_values() {
        let euler_gamma = 0.577_215_664_901_532_9;
        assert!(
            (digamma(1.0) + euler_gamma).abs() < 1e-14,
            "{}",
            digamma(1.0) + euler_gamma
        );
        assert!((digamma(0.5) + euler_gamma + 2.0 * 2f64.ln()).abs() < 1e-14);
        // ψ(x+1) = ψ(x) + 1/x across the shift boundary.
        for x in [0.01, 0.3, 9.5, 10.0, 57.25, 1e6] {
            assert!((digamma(x + 1.0) - digamma(x) - 1.0 / x).abs() < 1e-12 * (1.0 + 1.0 / x));
        }
    }

    #[test]
    fn digamma_is_the_derivative_of_ln_gamma() {
        for x in [0.2, 1.7, 12.0, 300.5] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!((numeric - digamma(x)).abs() < 1e-7 * digamma(x).abs().max(1.0));
        }
    }

    #[test]
    fn hyp2f1_closed_forms() {
        // ₂F₁(1,1;2;z) = −ln(1−z)/z (A&S 15.1.3).
        for z in [1e-3_f64, 0.5, 0.9, 0.999] {
            let exact = (-(-z).ln_1p() / z).ln();
            assert!(rel(ln_hyp2f1(1.0, 1.0, 2.0, z), exact) < 1e-12, "z={z}");
        }
        // ₂F₁(a,b;b;z) = (1−z)^(−a) (A&S 15.1.8), which takes the Euler branch.
        for (a, z) in [(0.5, 0.3_f64), (300.0, 0.99), (3.0, 0.9999)] {
            let exact = -a * (-z).ln_1p();
            assert!(rel(ln_hyp2f1(a, 2.5, 2.5, z), exact) < 1e-12, "a={a} z={z}");
        }
    }

    #[test]
    fn euler_branch_agrees_with_the_direct_series() {
        for (a, b, c, z) in [
            (300.2, 302.4, 301.6, 0.6),
            (1.2, 3.4, 2.1, 0.95),
            (50.0, 50.0, 60.0, 0.9),
        ] {
            let direct = ln_hyp2f1_direct(a, b, c, z);
            let fast = ln_hyp2f1(a, b, c, z);
            assert!(
                rel(fast, direct) < 1e-11,
                "({a},{b},{c},{z}): {fast} vs {direct}"
            );
        }
    }

    #[test]
    fn compensated_sum_keeps_small_terms() {
        let mut s = CompensatedSum::default();
        for v in [1e16, 1.0, -1e16, 1.0] {
            s.add(v);
        }
        assert_eq!(s.value(), 2.0);
    }

    #[test]
    fn hyp2f1_outside_domain_is_nan() {
        assert!(ln_hyp2f1(1.0, 1.0, 2.0, 1.0).is_nan());
        assert!(ln_hyp2f1(-1.0, 1.0, 2.0, 0.5).is_nan());
    }
}
