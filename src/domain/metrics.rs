//! The small formulas every report shares: rates that refuse to divide by
//! zero, money per customer, NPS, CAC, LTV:CAC and payback. Pure functions,
//! so each definition is tested once, here.

use super::Total;

/// `part / whole`, or `None` when nobody could be counted (`whole` = 0).
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// An amount shared among `customers`, rounded half away from zero to the
/// nano; `None` for no customers.
pub fn per_customer(total: Total, customers: u64) -> Option<Total> {
    (customers > 0).then(|| total.div_round(customers))
}

/// Answers to the NPS question ("how likely are you to recommend us",
/// 0-10) counted per respondent: 9-10 promoters, 0-6 detractors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NpsCounts {
    pub respondents: u64,
    pub promoters: u64,
    pub detractors: u64,
}

impl NpsCounts {
    /// Net Promoter Score: % promoters − % detractors, in [−100, 100];
    /// `None` without respondents.
    pub fn score(self) -> Option<f64> {
        (self.respondents > 0).then(|| {
            100.0 * (self.promoters as f64 - self.detractors as f64) / self.respondents as f64
        })
    }
}

/// Lifetime value per customer over acquisition cost per customer; `None`
/// when acquisition cost nothing (or is unknown).
pub fn ltv_to_cac(ltv: Total, cac: Total) -> Option<f64> {
    (cac.nanos() > 0).then(|| ltv.nanos() as f64 / cac.nanos() as f64)
}

/// The first period `k` whose cumulative revenue per customer has reached
/// the acquisition cost per customer; `None` if none has yet.
pub fn payback_period(cumulative_per_customer: &[Total], cac: Total) -> Option<u32> {
    cumulative_per_customer
        .iter()
        .position(|c| *c >= cac)
        .map(|k| k as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(nanos: i128) -> Total {
        Total::from_nanos(nanos).unwrap()
    }

    #[test]
    fn rates_refuse_to_divide_by_nobody() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn money_per_customer_rounds_half_away_from_zero() {
        assert_eq!(per_customer(t(10), 4), Some(t(3)));
        assert_eq!(per_customer(t(-10), 4), Some(t(-3)));
        assert_eq!(per_customer(t(10), 3), Some(t(3)));
        assert_eq!(per_customer(t(11), 0), None);
    }

    #[test]
    fn nps_is_promoters_minus_detractors_in_percent() {
        let c = NpsCounts {
            respondents: 8,
            promoters: 4,
            detractors: 2,
        };
        assert_eq!(c.score(), Some(25.0));
        assert_eq!(NpsCounts::default().score(), None);
    }

    #[test]
    fn payback_is_the_first_period_at_or_above_cac() {
        let c = t;
        assert_eq!(payback_period(&[c(5), c(10), c(20)], c(10)), Some(1));
        assert_eq!(payback_period(&[c(5), c(9)], c(10)), None);
        assert_eq!(ltv_to_cac(c(30), c(10)), Some(3.0));
        assert_eq!(ltv_to_cac(c(30), c(0)), None);
    }
}
