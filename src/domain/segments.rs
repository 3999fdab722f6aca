//! RFM scores, named segments and Pareto value tiers of a customer base.
//!
//! RFM: quintile scores 1-5 over the whole base, 5 best: recency (days since
//! the last purchase occasion, fewer is better), frequency (purchase
//! occasions) and monetary (net revenue per occasion). Ties share the
//! quintile of their first member, so equal customers score equally.
//! Segments follow the common R x F grid, reconciled with the model's churn
//! risk ([`Segment::reconciled`]); value tiers rank customers by total value
//! (historical + predicted): the top 1%, the next 19%, the rest.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    Champions,
    Loyal,
    PotentialLoyalists,
    New,
    Promising,
    NeedsAttention,
    AtRisk,
    Hibernating,
    Lost,
}

impl Segment {
    /// From recency and frequency scores (1-5).
    pub fn from_rf(recency: u8, frequency: u8) -> Self {
        match (recency, frequency) {
            (4..=5, 4..=5) => Segment::Champions,
            (3, 4..=5) => Segment::Loyal,
            (4..=5, 2..=3) => Segment::PotentialLoyalists,
            (5, 1) => Segment::New,
            (4, 1) => Segment::Promising,
            (3, _) => Segment::NeedsAttention,
            (1..=2, 3..=5) => Segment::AtRisk,
            (2, _) => Segment::Hibernating,
            _ => Segment::Lost,
        }
    }

    /// The segment a customer is shown in, once the model has had its say.
    ///
    /// The R x F grid reads calendar recency: 60 days without a purchase
    /// rank well in a base of occasional buyers, yet for a customer who
    /// bought every nine days they are seven missed purchases, and the
    /// model (which weighs each customer's own rhythm) holds them almost
    /// surely gone. A customer in the HIGH churn band (`high_risk`) is
    /// therefore never put in an engaged segment (champions, loyal,
    /// potential loyalists, new, promising, needs attention): with a
    /// frequency score of 3 or more they are `at_risk` (valuable, slipping
    /// away), below it `hibernating`. The RFM scores themselves are kept as
    /// computed; segments the grid already calls inactive stay as they are.
    pub fn reconciled(self, frequency: u8, high_risk: bool) -> Self {
        if !high_risk || !self.engaged() {
            return self;
        }
        if frequency >= 3 {
            Segment::AtRisk
        } else {
            Segment::Hibernating
        }
    }

    /// Whether the grid calls this segment engaged (recent enough to be
    /// treated as an active customer).
    pub fn engaged(self) -> bool {
        !matches!(self, Segment::AtRisk | Segment::Hibernating | Segment::Lost)
    }

    pub const ALL: [Segment; 9] = [
        Segment::Champions,
        Segment::Loyal,
        Segment::PotentialLoyalists,
        Segment::New,
        Segment::Promising,
        Segment::NeedsAttention,
        Segment::AtRisk,
        Segment::Hibernating,
        Segment::Lost,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Segment::Champions => "champions",
            Segment::Loyal => "loyal",
            Segment::PotentialLoyalists => "potential_loyalists",
            Segment::New => "new",
            Segment::Promising => "promising",
            Segment::NeedsAttention => "needs_attention",
            Segment::AtRisk => "at_risk",
            Segment::Hibernating => "hibernating",
            Segment::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueTier {
    Top1,
    Top20,
    Rest,
}

impl ValueTier {
    /// From the top down.
    pub const ALL: [ValueTier; 3] = [ValueTier::Top1, ValueTier::Top20, ValueTier::Rest];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueTier::Top1 => "top_1_percent",
            ValueTier::Top20 => "top_20_percent",
            ValueTier::Rest => "rest",
        }
    }
}

/// The stated order of segment report rows: a segment's place in
/// [`Segment::ALL`] (best first), a value tier's in [`ValueTier::ALL`]
/// (top down); an unknown name after them all.
pub fn report_order(name: &str) -> usize {
    Segment::ALL
        .iter()
        .position(|s| s.name() == name)
        .or_else(|| ValueTier::ALL.iter().position(|t| t.name() == name))
        .unwrap_or(usize::MAX)
}

/// Where a customer stood in the base at a model's fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmentation {
    pub recency_score: u8,
    pub frequency_score: u8,
    pub monetary_score: u8,
    pub segment: Segment,
    pub value_tier: ValueTier,
}

/// A customer's scores under one model version, as stored at fit time.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationScore {
    pub customer_id: super::CustomerId,
    pub model_version: i64,
    pub probability_alive: f64,
    pub churn_risk: f64,
    pub probability_no_purchase: f64,
    pub expected_purchases: f64,
    pub predicted_value: f64,
    /// churn_risk × the value expected if the customer stays
    /// (predicted_value / P(alive)).
    pub value_at_risk: f64,
    pub historical_value: super::Total,
    pub recency_score: u8,
    pub frequency_score: u8,
    pub monetary_score: u8,
    pub segment: Segment,
    pub value_tier: ValueTier,
}

/// Quintile scores 1-5 of `values` (higher value, higher score); equal
/// values get equal scores.
pub fn quintiles(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].partial_cmp(&values[b]).unwrap_or(Ordering::Equal));
    let mut scores = vec![0u8; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let score = (i * 5 / n.max(1)) as u8 + 1;
        for &k in &order[i..=j] {
            scores[k] = score;
        }
        i = j + 1;
    }
    scores
}

/// Value tiers by rank of `total_values` (highest first).
pub fn value_tiers(total_values: &[f64]) -> Vec<ValueTier> {
    let n = total_values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        total_values[b]
            .partial_cmp(&total_values[a])
            .unwrap_or(Ordering::Equal)
    });
    let top1 = n.div_ceil(100);
    let top20 = n.div_ceil(5);
    let mut tiers = vec![ValueTier::Rest; n];
    for (rank, &k) in order.iter().enumerate() {
        tiers[k] = if rank < top1 {
            ValueTier::Top1
        } else if rank < top20 {
            ValueTier::Top20
        } else {
            ValueTier::Rest
        };
    }
    tiers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_order_is_segments_best_first_and_tiers_top_down() {
        // Segments and tiers are separate lists, each in its own order.
        let mut names = vec!["lost", "champions", "at_risk", "loyal"];
        names.sort_by_key(|n| report_order(n));
        assert_eq!(names, ["champions", "loyal", "at_risk", "lost"]);
        assert!(report_order("top_1_percent") < report_order("top_20_percent"));
        assert!(report_order("top_20_percent") < report_order("rest"));
        assert_eq!(report_order("unknown"), usize::MAX);
    }

    #[test]
    fn high_risk_customers_leave_the_engaged_segments_and_nobody_else_moves() {
        for r in 1..=5 {
            for f in 1..=5 {
                let grid = Segment::from_rf(r, f);
                assert_eq!(grid.reconciled(f, false), grid, "low risk keeps ({r},{f})");
                let shown = grid.reconciled(f, true);
                assert!(
                    !shown.engaged(),
                    "({r},{f}) at high risk shown as {shown:?}"
                );
                if !grid.engaged() {
                    assert_eq!(shown, grid, "inactive ({r},{f}) stays");
                } else {
                    let want = if f >= 3 {
                        Segment::AtRisk
                    } else {
                        Segment::Hibernating
                    };
                    assert_eq!(shown, want, "({r},{f})");
                }
            }
        }
    }

    #[test]
    fn quintiles_split_evenly_and_ties_score_alike() {
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let q = quintiles(&values);
        assert_eq!(q[0], 1);
        assert_eq!(q[19], 1);
        assert_eq!(q[20], 2);
        assert_eq!(q[99], 5);
        assert_eq!(
            (1..=5)
                .map(|s| q.iter().filter(|&&x| x == s).count())
                .collect::<Vec<_>>(),
            [20; 5]
        );
        let tied = quintiles(&[1.0, 1.0, 1.0, 2.0, 3.0]);
        assert_eq!(tied, [1, 1, 1, 4, 5]);
    }

    #[test]
    fn value_tiers_take_the_top_1_and_20_percent() {
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let tiers = value_tiers(&values);
        assert_eq!(tiers.iter().filter(|t| **t == ValueTier::Top1).count(), 10);
        assert_eq!(
            tiers.iter().filter(|t| **t == ValueTier::Top20).count(),
            190
        );
        assert_eq!(tiers[999], ValueTier::Top1);
        assert_eq!(tiers[0], ValueTier::Rest);
    }

    #[test]
    fn segments_follow_the_recency_frequency_grid() {
        assert_eq!(Segment::from_rf(5, 5), Segment::Champions);
        assert_eq!(Segment::from_rf(5, 1), Segment::New);
        assert_eq!(Segment::from_rf(1, 5), Segment::AtRisk);
        assert_eq!(Segment::from_rf(1, 1), Segment::Lost);
        assert_eq!(Segment::from_rf(2, 1), Segment::Hibernating);
    }
}
