//! Analytic second derivatives of the per-customer log-likelihoods, for
//! standard errors, the Newton polish and the parameter covariance behind
//! score intervals (docs/model.md, "Analytic Hessians", H1-H4).
//!
//! BG/NBD and MBG/NBD share one form (H2): ln L = (x-only terms) +
//! ln(e^A3 + e^A4), MBG/NBD being BG/NBD with b+1 in the Beta terms and the
//! "dropped out after t_x" term present also at x = 0. Gamma-Gamma is H3.
//! Each returns the gradient g and Hessian H in the natural parameters;
//! [`to_log_parameters`] turns them into the Hessian in θ = ln(params)
//! (H1). Pareto/NBD's second derivatives would need the second derivatives
//! of its tail series in four directions; its Hessian stays the central
//! difference of its analytic gradient (docs/model.md H4).

use crate::fit::sum_rows;
use crate::special::{digamma, log_sum_exp, trigamma};

/// (gradient, Hessian) of a four-parameter function.
pub(crate) type Derivatives4 = ([f64; 4], [[f64; 4]; 4]);

/// One term of ln Σₖ e^(Aₖ): (its share wₖ, ∇Aₖ, ∇²Aₖ).
type Term = (f64, [f64; 4], [[f64; 4]; 4]);

/// d²ℓ/dθᵢdθⱼ with θ = ln p: pᵢpⱼHᵢⱼ + [i = j]·pᵢgᵢ (H1).
pub(crate) fn to_log_parameters<const N: usize>(
    p: &[f64; N],
    g: &[f64; N],
    h: &[[f64; N]; N],
) -> [[f64; N]; N] {
    let mut out = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..N {
            out[i][j] = p[i] * p[j] * h[i][j];
        }
        out[i][i] += p[i] * g[i];
    }
    out
}

/// Gradient and Hessian in (r, α, a, b) of one customer's ln L for BG/NBD
/// (`shift` = 0) or MBG/NBD (`shift` = 1), time already scaled (H2).
#[cfg(test)]
pub(crate) fn bg_family_customer(
    p: &[f64; 4],
    (x, t_x, t): (f64, f64, f64),
    shift: f64,
) -> Derivatives4 {
    let (mut g, mut h) = bg_x_part(p, x, shift);
    let (gr, hr) = bg_row_part(p, (x, t_x, t), shift);
    for i in 0..4 {
        g[i] += gr[i];
        for j in 0..4 {
            h[i][j] += hr[i][j];
        }
    }
    (g, h)
}

/// The x-only terms of H2 (Γ and Beta functions).
pub(crate) fn bg_x_part(p: &[f64; 4], x: f64, shift: f64) -> Derivatives4 {
    let [r, alpha, a, b] = *p;
    let bx = b + x + shift;
    let (mut g, mut h) = ([0.0; 4], [[0.0; 4]; 4]);
    // x-only: lnΓ(r+x) − lnΓ(r) + r ln α + lnΓ(a+b) + lnΓ(b+x+k) − lnΓ(b) − lnΓ(a+b+x+k).
    g[0] = digamma(r + x) - digamma(r) + alpha.ln();
    g[1] = r / alpha;
    g[2] = digamma(a + b) - digamma(a + bx);
    g[3] = g[2] + digamma(bx) - digamma(b);
    h[0][0] = trigamma(r + x) - trigamma(r);
    h[0][1] = 1.0 / alpha;
    h[1][0] = h[0][1];
    h[1][1] = -r / (alpha * alpha);
    let t2 = trigamma(a + b) - trigamma(a + bx);
    h[2][2] = t2;
    h[2][3] = t2;
    h[3][2] = t2;
    h[3][3] = t2 + trigamma(bx) - trigamma(b);
    (g, h)
}

/// The (x, t_x, T) terms of H2: ln(e^A3 + e^A4) (A4 absent for BG/NBD at x = 0).
pub(crate) fn bg_row_part(p: &[f64; 4], (x, t_x, t): (f64, f64, f64), shift: f64) -> Derivatives4 {
    let [r, alpha, a, b] = *p;
    let bx = b + x + shift;
    let (mut g, mut h) = ([0.0; 4], [[0.0; 4]; 4]);
    // ln(e^A3 + e^A4): A3 = −(r+x) ln(α+T), A4 = ln a − ln(b+x+k−1) − (r+x) ln(α+t_x).
    let rx = r + x;
    let (u3, u4) = (alpha + t, alpha + t_x);
    let a3 = -rx * u3.ln();
    let g3 = [-u3.ln(), -rx / u3, 0.0, 0.0];
    let mut h3 = [[0.0; 4]; 4];
    h3[0][1] = -1.0 / u3;
    h3[1][0] = h3[0][1];
    h3[1][1] = rx / (u3 * u3);
    let has_dead = x > 0.0 || shift > 0.0;
    if !has_dead {
        add_term(&mut g, &mut h, &[(1.0, g3, h3)]);
        return (g, h);
    }
    let d = bx - 1.0;
    let a4 = a.ln() - d.ln() - rx * u4.ln();
    let g4 = [-u4.ln(), -rx / u4, 1.0 / a, -1.0 / d];
    let mut h4 = [[0.0; 4]; 4];
    h4[0][1] = -1.0 / u4;
    h4[1][0] = h4[0][1];
    h4[1][1] = rx / (u4 * u4);
    h4[2][2] = -1.0 / (a * a);
    h4[3][3] = 1.0 / (d * d);
    let total = log_sum_exp(a3, a4);
    let (w3, w4) = ((a3 - total).exp(), (a4 - total).exp());
    add_term(&mut g, &mut h, &[(w3, g3, h3), (w4, g4, h4)]);
    (g, h)
}

/// Adds ln Σₖ e^(Aₖ) given each term's weight wₖ = e^(Aₖ)/Σ, gradient gₖ
/// and Hessian Hₖ: gradient Σ wₖgₖ, Hessian Σ wₖ(Hₖ + gₖgₖᵀ) − ggᵀ.
fn add_term(g: &mut [f64; 4], h: &mut [[f64; 4]; 4], terms: &[Term]) {
    let mut mean = [0.0; 4];
    for (w, gk, _) in terms {
        for i in 0..4 {
            mean[i] += w * gk[i];
        }
    }
    for i in 0..4 {
        g[i] += mean[i];
        for j in 0..4 {
            let mut second = -mean[i] * mean[j];
            for (w, gk, hk) in terms {
                second += w * (hk[i][j] + gk[i] * gk[j]);
            }
            h[i][j] += second;
        }
    }
}

/// Gradient and Hessian in (p, q, γ) of one customer's Gamma-Gamma LL
/// (x > 0 occasions of mean m, m already scaled) (H3):
/// lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(γ+mx).
pub(crate) fn gamma_gamma_customer(params: &[f64; 3], x: f64, m: f64) -> ([f64; 3], [[f64; 3]; 3]) {
    let [p, q, gamma] = *params;
    let px = p * x;
    let u = gamma + m * x;
    let (dg_pxq, dg_px) = (digamma(px + q), digamma(px));
    let (tg_pxq, tg_px) = (trigamma(px + q), trigamma(px));
    let g = [
        x * (dg_pxq - dg_px + m.ln() + x.ln() - u.ln()),
        dg_pxq - digamma(q) + gamma.ln() - u.ln(),
        q / gamma - (px + q) / u,
    ];
    let pq = x * tg_pxq;
    let pg = -x / u;
    let qg = 1.0 / gamma - 1.0 / u;
    let h = [
        [x * x * (tg_pxq - tg_px), pq, pg],
        [pq, tg_pxq - trigamma(q), qg],
        [pg, qg, -q / (gamma * gamma) + (px + q) / (u * u)],
    ];
    (g, h)
}

/// Flattens (g, H) × `weight` into `acc` = [g; H row by row], the shape
/// `sum_rows` adds up.
pub(crate) fn accumulate<const N: usize, const K: usize>(
    acc: &mut [f64; K],
    weight: f64,
    (g, h): &([f64; N], [[f64; N]; N]),
) {
    for i in 0..N {
        acc[i] += weight * g[i];
        for j in 0..N {
            acc[N + N * i + j] += weight * h[i][j];
        }
    }
}

/// Σ over `rows` (on rayon above `chunk` rows) of weight × `derivatives`,
/// added to `acc`, then the mean negative θ-Hessian at `p` of `customers`.
pub(crate) fn mean_negative_theta_hessian_over<R: Sync>(
    p: &[f64; 4],
    mut acc: [f64; 20],
    (rows, chunk): (&[R], usize),
    derivatives: impl Fn(&R) -> (f64, Derivatives4) + Sync,
    customers: f64,
) -> Vec<Vec<f64>> {
    let sums = sum_rows(rows, chunk, |rows| {
        let mut acc = [0.0; 20];
        for row in rows {
            let (weight, d) = derivatives(row);
            accumulate(&mut acc, weight, &d);
        }
        acc
    });
    acc.iter_mut().zip(sums).for_each(|(a, s)| *a += s);
    mean_negative_theta_hessian(p, &acc, customers)
}

/// The Hessian of the mean negative log-likelihood in θ from the summed
/// natural-parameter gradient and Hessian `acc` (as [`accumulate`] lays
/// them out) of `customers` customers at natural parameters `p`.
pub(crate) fn mean_negative_theta_hessian<const N: usize, const K: usize>(
    p: &[f64; N],
    acc: &[f64; K],
    customers: f64,
) -> Vec<Vec<f64>> {
    let g: [f64; N] = std::array::from_fn(|i| acc[i]);
    let h: [[f64; N]; N] = std::array::from_fn(|i| std::array::from_fn(|j| acc[N + N * i + j]));
    to_log_parameters(p, &g, &h)
        .iter()
        .map(|row| row.iter().map(|v| -v / customers).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `f`'s analytic gradient.
    fn check<const N: usize>(
        f: impl Fn(&[f64; N]) -> ([f64; N], [[f64; N]; N]),
        p: [f64; N],
        what: &str,
    ) {
        let (_, h) = f(&p);
        // Differencing noise is relative to the largest entries.
        let scale = h.iter().flatten().fold(0.0_f64, |m, v| m.max(v.abs()));
        for j in 0..N {
            let step = 1e-6 * p[j];
            let (mut up, mut down) = (p, p);
            up[j] += step;
            down[j] -= step;
            let (gu, gd) = (f(&up).0, f(&down).0);
            for i in 0..N {
                let fd = (gu[i] - gd[i]) / (2.0 * step);
                assert!(
                    (fd - h[i][j]).abs() <= 1e-7 * scale,
                    "{what} H[{i}][{j}] at {p:?}: analytic {} vs differenced {fd}",
                    h[i][j]
                );
            }
        }
    }

    #[test]
    fn bg_and_mbg_hessians_match_their_differenced_gradients() {
        for shift in [0.0, 1.0] {
            for history in [
                (0.0, 0.0, 0.8),
                (2.0, 0.3, 0.9),
                (40.0, 0.95, 1.0),
                (1.0, 1.0, 1.0),
            ] {
                let what = format!("shift {shift} history {history:?}");
                let f = |p: &[f64; 4]| bg_family_customer(p, history, shift);
                check(f, [0.24, 0.09, 0.79, 2.4], &what);
                check(f, [3.0, 0.5, 0.3, 0.6], &what);
            }
        }
    }

    #[test]
    fn gamma_gamma_hessian_matches_its_differenced_gradient() {
        for (x, m) in [(1.0, 0.5), (7.0, 2.3), (120.0, 0.9)] {
            check(
                |p| gamma_gamma_customer(p, x, m),
                [6.25, 3.74, 0.44],
                "Gamma-Gamma",
            );
        }
    }
}
