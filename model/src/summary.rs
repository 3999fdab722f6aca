//! Per-customer summaries `(x, t_x, T, m)` as defined in Fader, Hardie & Lee
//! (2005, Marketing Science 24(2), section 2) and docs/definitions.md, validated once,
//! and their grouping: customers with identical `(x, t_x, T)` share one
//! likelihood term, so fitting costs grow with distinct summaries, not
//! customers. Knows nothing of how summaries are computed from transactions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::error::ModelError;

/// A fast hasher for keys made of f64 bit patterns (folded 128-bit
/// multiply, as in foldhash): whole-number days have all-zero low mantissa
/// bits, which the mixing spreads over the whole word. Not DoS-resistant;
/// keys here are numbers, not attacker-chosen strings.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        let product =
            u128::from(self.0 ^ word ^ 0x243f_6a88_85a3_08d3) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

/// HashMap with [`FoldHasher`].
pub(crate) type FastHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// An empty [`FastHashMap`] with room for `capacity` entries.
pub(crate) fn fast_map<K, V>(capacity: usize) -> FastHashMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// One customer's history, in days, from the first purchase occasion.
///
/// Invariants (checked by [`CustomerSummary::new`]): `x` is a finite
/// non-negative integer, `0 ≤ t_x ≤ T` and finite, `m` finite; `x = 0`
/// implies `t_x = 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerSummary {
    x: f64,
    t_x: f64,
    t: f64,
    m: f64,
}

impl CustomerSummary {
    /// Validates a summary.
    ///
    /// - `x`: repeat purchase occasions (occasions − 1).
    /// - `t_x`: days from the first to the last occasion (recency).
    /// - `t`: days from the first occasion to the end of observation (T).
    /// - `m`: mean value of the repeat occasions (0 when x = 0).
    pub fn new(x: f64, t_x: f64, t: f64, m: f64) -> Result<Self, ModelError> {
        let invalid = |reason| ModelError::InvalidSummary {
            x,
            t_x,
            t,
            m,
            reason,
        };
        if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0) {
            return Err(invalid("x must be a non-negative whole number"));
        }
        if !(t.is_finite() && t >= 0.0) {
            return Err(invalid("T must be a finite number of days >= 0"));
        }
        if !(t_x.is_finite() && t_x >= 0.0 && t_x <= t) {
            return Err(invalid("t_x must satisfy 0 <= t_x <= T"));
        }
        if x == 0.0 && t_x != 0.0 {
            return Err(invalid("t_x must be 0 when x = 0"));
        }
        if !m.is_finite() {
            return Err(invalid("m must be finite"));
        }
        // + 0.0 turns −0.0 into 0.0, so equal values have equal bit patterns
        // (grouping compares and sorts bit patterns).
        Ok(Self {
            x: x + 0.0,
            t_x: t_x + 0.0,
            t: t + 0.0,
            m: m + 0.0,
        })
    }

    /// Repeat purchase occasions, x.
    pub fn x(&self) -> f64 {
        self.x
    }

    /// Days from the first to the last occasion, t_x.
    pub fn t_x(&self) -> f64 {
        self.t_x
    }

    /// Days from the first occasion to the end of observation, T.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// Mean value of the repeat occasions, m.
    pub fn m(&self) -> f64 {
        self.m
    }
}

/// Customers sharing one `(x, t_x, T)`: the unit of the BG/NBD likelihood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurchaseGroup {
    /// Repeat occasions.
    pub x: f64,
    /// Days from first to last occasion.
    pub t_x: f64,
    /// Days observed.
    pub t: f64,
    /// Number of customers with exactly this history.
    pub count: u64,
}

/// Customers sharing one `(x, m)`: the unit of the Gamma-Gamma likelihood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendGroup {
    /// Repeat occasions (> 0).
    pub x: f64,
    /// Mean repeat-occasion value (> 0).
    pub m: f64,
    /// Number of customers with exactly this (x, m).
    pub count: u64,
}

/// A group of customers sharing a key, merged with its equals by
/// [`sort_and_merge`].
pub(crate) trait Group: Send {
    /// The key's bit patterns: non-negative floats order like them.
    type Order: Ord + Send;
    /// The sort key.
    fn order(&self) -> Self::Order;
    /// Whether two groups have the same key (by value).
    fn same_key(&self, other: &Self) -> bool;
    /// Customers in the group.
    fn count_mut(&mut self) -> &mut u64;
}

impl Group for PurchaseGroup {
    type Order = [u64; 3];
    fn order(&self) -> [u64; 3] {
        [self.x.to_bits(), self.t_x.to_bits(), self.t.to_bits()]
    }
    fn same_key(&self, other: &Self) -> bool {
        (self.x, self.t_x, self.t) == (other.x, other.t_x, other.t)
    }
    fn count_mut(&mut self) -> &mut u64 {
        &mut self.count
    }
}

impl Group for SpendGroup {
    type Order = [u64; 2];
    fn order(&self) -> [u64; 2] {
        [self.x.to_bits(), self.m.to_bits()]
    }
    fn same_key(&self, other: &Self) -> bool {
        (self.x, self.m) == (other.x, other.m)
    }
    fn count_mut(&mut self) -> &mut u64 {
        &mut self.count
    }
}

/// Orders groups by key (in parallel) and merges those with equal keys,
/// adding their counts; returns the number of customers.
pub(crate) fn sort_and_merge<G: Group>(groups: &mut Vec<G>) -> u64 {
    groups.par_sort_unstable_by_key(G::order);
    groups.dedup_by(|next, kept| {
        let same = next.same_key(kept);
        if same {
            *kept.count_mut() += *next.count_mut();
        }
        same
    });
    groups.iter_mut().map(|g| *g.count_mut()).sum()
}

/// Largest whole number of days (or occasions) the packed grouping key holds.
const PACKED_LIMIT: f64 = (1u64 << 21) as f64;

/// `x << 42 | t_x << 21 | T` when all three are whole numbers below 2²¹
/// (calendar-day summaries, as the service computes them).
fn packed_day_key(s: &CustomerSummary) -> Option<u64> {
    let fits = |v: f64| v.fract() == 0.0 && v < PACKED_LIMIT;
    (fits(s.x) && fits(s.t_x) && fits(s.t))
        .then_some(((s.x as u64) << 42) | ((s.t_x as u64) << 21) | s.t as u64)
}

/// Counts runs of equal keys in a sorted slice.
fn runs<K: PartialEq + Copy>(sorted: &[K]) -> Vec<(K, u64)> {
    let mut out: Vec<(K, u64)> = Vec::new();
    for &k in sorted {
        match out.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Groups `(x, t_x, T)` of the summaries with their counts. Whole-day
/// summaries are grouped by a parallel sort of packed keys (ordered by x,
/// then t_x, then T); others by hashing, in first-seen order.
pub fn group_purchases(summaries: &[CustomerSummary]) -> Vec<PurchaseGroup> {
    let packed: Option<Vec<u64>> = summaries.par_iter().map(packed_day_key).collect();
    if let Some(mut keys) = packed {
        keys.par_sort_unstable();
        let mask = (1u64 << 21) - 1;
        return runs(&keys)
            .into_iter()
            .map(|(k, count)| PurchaseGroup {
                x: (k >> 42) as f64,
                t_x: ((k >> 21) & mask) as f64,
                t: (k & mask) as f64,
                count,
            })
            .collect();
    }
    group_purchases_by_hash(summaries)
}

fn group_purchases_by_hash(summaries: &[CustomerSummary]) -> Vec<PurchaseGroup> {
    let mut index: FastHashMap<[u64; 3], usize> = fast_map(summaries.len() / 2 + 16);
    let mut groups: Vec<PurchaseGroup> = Vec::new();
    for s in summaries {
        let key = [s.x.to_bits(), s.t_x.to_bits(), s.t.to_bits()];
        let slot = *index.entry(key).or_insert_with(|| {
            groups.push(PurchaseGroup {
                x: s.x,
                t_x: s.t_x,
                t: s.t,
                count: 0,
            });
            groups.len() - 1
        });
        groups[slot].count += 1;
    }
    groups
}

/// Groups `(x, m)` of the summaries with x > 0 and m > 0 (the customers the
/// spend model is fitted on), with their counts, ordered by x then m (a
/// parallel sort: for positive numbers the bit patterns sort like the values).
pub fn group_spend(summaries: &[CustomerSummary]) -> Vec<SpendGroup> {
    let mut keys: Vec<u128> = summaries
        .par_iter()
        .filter(|s| s.x > 0.0 && s.m > 0.0)
        .map(|s| (u128::from(s.x.to_bits()) << 64) | u128::from(s.m.to_bits()))
        .collect();
    keys.par_sort_unstable();
    runs(&keys)
        .into_iter()
        .map(|(k, count)| SpendGroup {
            x: f64::from_bits((k >> 64) as u64),
            m: f64::from_bits(k as u64),
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_fractional_or_negative_x() {
        assert!(CustomerSummary::new(1.5, 1.0, 2.0, 1.0).is_err());
        assert!(CustomerSummary::new(-1.0, 0.0, 2.0, 1.0).is_err());
    }

    #[test]
    fn rejects_recency_after_age() {
        let err = CustomerSummary::new(2.0, 5.0, 4.0, 1.0).unwrap_err();
        assert!(
            err.to_string().contains("t_x must satisfy 0 <= t_x <= T"),
            "{err}"
        );
    }

    #[test]
    fn rejects_non_finite_values() {
        assert!(CustomerSummary::new(1.0, 1.0, f64::INFINITY, 1.0).is_err());
        assert!(CustomerSummary::new(1.0, 1.0, 2.0, f64::NAN).is_err());
    }

    #[test]
    fn negative_zero_is_zero() {
        let s = CustomerSummary::new(-0.0, -0.0, 5.0, 1.0).unwrap();
        assert_eq!((s.x().to_bits(), s.t_x().to_bits()), (0, 0));
    }

    #[test]
    fn accepts_last_purchase_on_the_last_day() {
        assert!(CustomerSummary::new(3.0, 10.0, 10.0, 5.0).is_ok());
    }

    #[test]
    fn grouping_counts_identical_histories() {
        let s = |x, tx, t| CustomerSummary::new(x, tx, t, 1.0).unwrap();
        let groups = group_purchases(&[s(0.0, 0.0, 5.0), s(1.0, 2.0, 5.0), s(0.0, 0.0, 5.0)]);
        assert_eq!(
            groups,
            vec![
                PurchaseGroup {
                    x: 0.0,
                    t_x: 0.0,
                    t: 5.0,
                    count: 2
                },
                PurchaseGroup {
                    x: 1.0,
                    t_x: 2.0,
                    t: 5.0,
                    count: 1
                }
            ]
        );
    }

    #[test]
    fn fractional_days_group_like_whole_days() {
        let s = |x, tx, t| CustomerSummary::new(x, tx, t, 1.0).unwrap();
        let customers = [
            s(1.0, 2.5, 5.25),
            s(0.0, 0.0, 5.0),
            s(1.0, 2.5, 5.25),
            s(3.0, 4.0, 5.0),
        ];
        let mut groups = group_purchases(&customers);
        groups.sort_by(|a, b| a.x.total_cmp(&b.x));
        assert_eq!(
            groups.iter().map(|g| g.count).collect::<Vec<_>>(),
            vec![1, 2, 1]
        );
        assert_eq!((groups[1].t_x, groups[1].t), (2.5, 5.25));
    }

    #[test]
    fn spend_grouping_keeps_repeat_buyers_with_positive_value() {
        let s = |x, m| CustomerSummary::new(x, 0.0_f64.min(x), 10.0, m).unwrap();
        let groups = group_spend(&[
            s(0.0, 0.0),
            s(2.0, 10.5),
            s(1.0, 0.0),
            s(2.0, 10.5),
            s(1.0, 3.0),
        ]);
        assert_eq!(
            groups,
            vec![
                SpendGroup {
                    x: 1.0,
                    m: 3.0,
                    count: 1
                },
                SpendGroup {
                    x: 2.0,
                    m: 10.5,
                    count: 2
                }
            ]
        );
    }
}
