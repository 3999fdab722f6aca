//! The Pareto curve of a customer base: with customers ranked by total
//! value (historical + predicted) from the highest down, the share of all
//! value that the top share of customers holds. Storage hands over the
//! ranked customers in up to 100 equal groups (percentiles); this turns
//! them into cumulative points.

/// One point of the curve: the top `customers` hold `value_share` of the
/// value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueCurvePoint {
    /// Customers counted so far, from the most valuable down.
    pub customers: u64,
    /// `customers` over all customers.
    pub customer_share: f64,
    /// Their value over everyone's.
    pub value_share: f64,
}

/// The cumulative points of ranked groups `(customers, value)`, highest
/// value first. Empty when there are no customers or the total value is
/// not positive (a share of nothing means nothing). The last point is
/// exactly (1, 1): the total is the last running sum, added in the same
/// order.
pub fn value_curve(groups: &[(u64, f64)]) -> Vec<ValueCurvePoint> {
    let customers: u64 = groups.iter().map(|g| g.0).sum();
    let total = groups.iter().fold(0.0, |sum, g| sum + g.1);
    if customers == 0 || total.is_nan() || total <= 0.0 {
        return Vec::new();
    }
    let (mut count, mut value) = (0u64, 0.0);
    groups
        .iter()
        .map(|&(n, v)| {
            count += n;
            value += v;
            ValueCurvePoint {
                customers: count,
                customer_share: count as f64 / customers as f64,
                value_share: value / total,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_accumulate_and_end_at_one_one() {
        let c = value_curve(&[(1, 60.0), (1, 30.0), (2, 10.0)]);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].customers, c[0].customer_share), (1, 0.25));
        assert!((c[0].value_share - 0.6).abs() < 1e-15);
        assert!((c[1].value_share - 0.9).abs() < 1e-15);
        assert_eq!((c[2].customer_share, c[2].value_share), (1.0, 1.0));
    }

    #[test]
    fn no_customers_or_no_value_is_no_curve() {
        assert!(value_curve(&[]).is_empty());
        assert!(value_curve(&[(3, 0.0)]).is_empty());
        assert!(value_curve(&[(3, -1.0)]).is_empty());
        assert!(value_curve(&[(3, f64::NAN)]).is_empty());
    }
}
