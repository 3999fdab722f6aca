//! Cohort reports: customers grouped by the period of their first purchase
//! occasion, followed period by period. Storage aggregates the facts (cohort
//! sizes, per cohort and period activity, spend, NPS answers); this module
//! lays them out into the report, fills empty cells, marks partial periods
//! and computes every rate, so the definitions live in one pure place.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::{
    metrics::{ltv_to_cac, payback_period, per_customer, rate, NpsCounts},
    periods::{Granularity, MAX_PERIODS},
    FieldViolation, Total, TotalOutOfRange,
};

/// Which cohorts and periods a report covers, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CohortRange {
    pub granularity: Granularity,
    /// First day of the first cohort's period.
    pub first_cohort: NaiveDate,
    /// Cohorts in the report, 1..=MAX_PERIODS.
    pub cohorts: u32,
    /// Periods per cohort (k = 0..periods), 1..=MAX_PERIODS; periods that
    /// start after `as_of_day` are left out unless forecast.
    pub periods: u32,
    /// The business day of the report's as_of.
    pub as_of_day: NaiveDate,
}

impl CohortRange {
    /// Validates a request: `first` and `last` pick the first and last
    /// cohorts (the periods containing them, in business days), `periods`
    /// the periods per cohort (0: up to as_of's period). Every offending
    /// field is named.
    pub fn parse(
        granularity: Result<Granularity, FieldViolation>,
        first: Option<NaiveDate>,
        last: Option<NaiveDate>,
        as_of_day: NaiveDate,
        periods: u32,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let granularity = granularity.map_err(|v| violations.push(v)).ok();
        if first.is_none() {
            violations.push(FieldViolation::new("first_cohort", "is required"));
        }
        let last = last.unwrap_or(as_of_day);
        if last > as_of_day {
            violations.push(FieldViolation::new(
                "last_cohort",
                "must not be after as_of",
            ));
        }
        if periods > MAX_PERIODS {
            violations.push(FieldViolation::new(
                "periods",
                format!("must be at most {MAX_PERIODS}, got {periods}"),
            ));
        }
        let (Some(g), Some(first)) = (granularity, first) else {
            return Err(violations);
        };
        let first_cohort = g.start_of(first);
        let cohorts = g.periods_between(first_cohort, g.start_of(last)) + 1;
        if cohorts < 1 {
            violations.push(FieldViolation::new(
                "first_cohort",
                "must not be after last_cohort (default: as_of)",
            ));
        } else if cohorts > i64::from(MAX_PERIODS) {
            violations.push(FieldViolation::new(
                "last_cohort",
                format!("the range holds {cohorts} cohorts, more than {MAX_PERIODS}"),
            ));
        }
        // 0: up to as_of's period, which the cap bounds like any other
        // number (first_cohort may lie long before as_of).
        let periods = if periods == 0 {
            let up_to_as_of = g.periods_between(first_cohort, g.start_of(as_of_day)) + 1;
            if up_to_as_of > i64::from(MAX_PERIODS) {
                violations.push(FieldViolation::new(
                    "periods",
                    format!(
                        "0 means up to as_of's period, {up_to_as_of} periods after first_cohort, \
                         more than {MAX_PERIODS}: give at most {MAX_PERIODS} periods"
                    ),
                ));
            }
            up_to_as_of.clamp(1, i64::from(MAX_PERIODS)) as u32
        } else {
            periods
        };
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(Self {
            granularity: g,
            first_cohort,
            cohorts: cohorts as u32,
            periods,
            as_of_day,
        })
    }

    pub fn cohort_starts(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.cohorts).map(|i| self.granularity.add(self.first_cohort, i))
    }

    /// First day of the report's latest period: the last cohort's last
    /// period. A forecast is possible only when it starts after as_of.
    pub fn last_period_start(&self) -> NaiveDate {
        self.granularity
            .add(self.first_cohort, self.cohorts - 1 + self.periods - 1)
    }

    /// First day after the last cohort's period.
    pub fn cohorts_end(&self) -> NaiveDate {
        self.granularity.add(self.first_cohort, self.cohorts)
    }
}

/// One cohort's size: its customers, and those with two or more purchase
/// occasions by as_of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CohortSize {
    pub customers: u64,
    pub repeat_customers: u64,
}

/// What a cohort's customers did in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Customers with at least one purchase occasion in the period.
    pub active_customers: u64,
    /// Purchases (orders), several a day counted each.
    pub orders: u64,
    /// Purchases minus refunds of them, booked on the purchase's day.
    pub net: Total,
    /// Cost of the purchases that carried one.
    pub cost: Total,
    /// Purchases without a cost: margin is unknown while any exist.
    pub uncosted_purchases: u64,
}

/// Expected revenue of a cohort in a future period, from the model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Projection {
    /// Sum over the cohort's customers of expected purchases in the period.
    pub purchases: f64,
    /// Sum over the cohort's customers of expected purchases × expected
    /// spend per purchase, in nanos.
    pub revenue_nanos: f64,
}

/// Everything storage and the model contribute to a report.
#[derive(Debug, Clone, Default)]
pub struct CohortFacts {
    pub sizes: HashMap<NaiveDate, CohortSize>,
    /// Keyed by (cohort start, period start).
    pub activity: HashMap<(NaiveDate, NaiveDate), Activity>,
    /// Acquisition spend whose start lies in the cohort's period.
    pub spend: HashMap<NaiveDate, Total>,
    /// Latest NPS answer by as_of of each of the cohort's customers.
    pub nps: HashMap<NaiveDate, NpsCounts>,
    /// Keyed by (cohort start, k), for periods after as_of.
    pub projections: HashMap<(NaiveDate, u32), Projection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CohortPeriod {
    pub k: u32,
    pub start: NaiveDate,
    pub active_customers: u64,
    /// active_customers / cohort size; `None` for an empty cohort.
    pub retention_rate: Option<f64>,
    pub revenue: Total,
    pub revenue_per_customer: Option<Total>,
    pub cumulative_revenue_per_customer: Option<Total>,
    pub orders: u64,
    /// Net revenue minus cost, when every purchase in the cell has a cost.
    pub margin: Option<Total>,
    /// The period had not ended at as_of.
    pub partial: bool,
    /// Projected by the model, not observed.
    pub forecast: bool,
    /// Forecast periods: the expected purchases of the cohort.
    pub expected_purchases: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub start: NaiveDate,
    pub size: u64,
    pub periods: Vec<CohortPeriod>,
    pub repeat_purchase_rate: Option<f64>,
    pub acquisition_spend: Option<Total>,
    pub cac: Option<Total>,
    pub ltv_to_cac: Option<f64>,
    pub payback_period: Option<u32>,
    pub nps: Option<f64>,
    pub nps_respondents: u64,
}

/// Lays the facts out into cohorts; `with_forecast` adds the periods after
/// as_of (up to `range.periods`) from `facts.projections`. Fails when a
/// cohort's cumulative revenue or a margin passes what Money can carry.
pub fn build_cohorts(
    range: &CohortRange,
    facts: &CohortFacts,
    with_forecast: bool,
) -> Result<Vec<Cohort>, TotalOutOfRange> {
    let g = range.granularity;
    range
        .cohort_starts()
        .map(|start| {
            let size = facts.sizes.get(&start).copied().unwrap_or_default();
            let n = size.customers;
            let mut periods = Vec::new();
            let mut cumulative = Total::ZERO;
            let mut cumulative_per_customer = Vec::new();
            for k in 0..range.periods {
                let p_start = g.add(start, k);
                let observed = p_start <= range.as_of_day;
                if !(observed || (with_forecast && n > 0)) {
                    break;
                }
                let (period, revenue) = if observed {
                    let a = facts
                        .activity
                        .get(&(start, p_start))
                        .copied()
                        .unwrap_or_default();
                    let period = CohortPeriod {
                        k,
                        start: p_start,
                        active_customers: a.active_customers,
                        retention_rate: rate(a.active_customers, n),
                        revenue: a.net,
                        revenue_per_customer: None,
                        cumulative_revenue_per_customer: None,
                        orders: a.orders,
                        margin: (a.uncosted_purchases == 0)
                            .then(|| a.net.checked_sub(a.cost))
                            .transpose()?,
                        partial: g.add(start, k + 1) > range.as_of_day,
                        forecast: false,
                        expected_purchases: None,
                    };
                    (period, a.net)
                } else {
                    let p = facts
                        .projections
                        .get(&(start, k))
                        .copied()
                        .unwrap_or_default();
                    let revenue = Total::saturating_from_nanos_f64(p.revenue_nanos);
                    let period = CohortPeriod {
                        k,
                        start: p_start,
                        active_customers: 0,
                        retention_rate: None,
                        revenue,
                        revenue_per_customer: None,
                        cumulative_revenue_per_customer: None,
                        orders: 0,
                        margin: None,
                        partial: false,
                        forecast: true,
                        expected_purchases: Some(p.purchases),
                    };
                    (period, revenue)
                };
                cumulative = cumulative.checked_add(revenue)?;
                let per = per_customer(cumulative, n);
                if observed {
                    cumulative_per_customer.extend(per);
                }
                periods.push(CohortPeriod {
                    revenue_per_customer: per_customer(revenue, n),
                    cumulative_revenue_per_customer: per,
                    ..period
                });
            }
            let spend = facts.spend.get(&start).copied();
            let cac = spend.and_then(|s| per_customer(s, n));
            let observed_ltv = cumulative_per_customer.last().copied();
            let nps = facts.nps.get(&start).copied().unwrap_or_default();
            Ok(Cohort {
                start,
                size: n,
                repeat_purchase_rate: rate(size.repeat_customers, n),
                acquisition_spend: spend,
                cac,
                ltv_to_cac: cac.zip(observed_ltv).and_then(|(c, l)| ltv_to_cac(l, c)),
                payback_period: cac.and_then(|c| payback_period(&cumulative_per_customer, c)),
                nps: nps.score(),
                nps_respondents: nps.respondents,
                periods,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(nanos: i128) -> Total {
        Total::from_nanos(nanos).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn range(as_of_day: NaiveDate) -> CohortRange {
        CohortRange {
            granularity: Granularity::Month,
            first_cohort: d(2026, 1, 1),
            cohorts: 3,
            periods: 4,
            as_of_day,
        }
    }

    #[test]
    fn the_last_period_is_the_last_cohorts_last() {
        // Cohorts Jan..Mar 2026, 4 months each: March's run to June.
        assert_eq!(range(d(2026, 5, 31)).last_period_start(), d(2026, 6, 1));
        let mut r = range(d(1901, 5, 31));
        r.first_cohort = d(1901, 1, 1);
        assert_eq!(r.last_period_start(), d(1901, 6, 1));
    }

    #[test]
    fn default_periods_are_capped_like_given_ones() {
        let g = Ok(Granularity::Week);
        // 22 weekly cohorts in 2000; "up to as_of" would be ~1,400 weeks.
        let e = CohortRange::parse(
            g.clone(),
            Some(d(2000, 1, 3)),
            Some(d(2000, 6, 1)),
            d(2026, 4, 1),
            0,
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "periods");
        let ok = CohortRange::parse(
            g.clone(),
            Some(d(2000, 1, 3)),
            Some(d(2000, 6, 1)),
            d(2026, 4, 1),
            MAX_PERIODS,
        )
        .unwrap();
        assert_eq!((ok.cohorts, ok.periods), (22, MAX_PERIODS));
        // Exactly the cap by default is fine.
        let first = d(2026, 4, 6) - chrono::Days::new(7 * u64::from(MAX_PERIODS - 1));
        let ok = CohortRange::parse(g, Some(first), None, d(2026, 4, 6), 0).unwrap();
        assert_eq!(ok.periods, MAX_PERIODS);
    }

    #[test]
    fn a_range_names_every_bad_field() {
        let g = Ok(Granularity::Week);
        let bad = CohortRange::parse(
            Err(FieldViolation::new("granularity", "is required")),
            None,
            Some(d(2026, 5, 1)),
            d(2026, 4, 1),
            61,
        )
        .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["granularity", "first_cohort", "last_cohort", "periods"]
        );
        let reversed = CohortRange::parse(
            g.clone(),
            Some(d(2026, 3, 9)),
            Some(d(2026, 3, 1)),
            d(2026, 4, 1),
            0,
        );
        assert_eq!(reversed.unwrap_err()[0].field, "first_cohort");
        let too_many = CohortRange::parse(g.clone(), Some(d(2025, 1, 1)), None, d(2026, 4, 1), 0);
        assert_eq!(too_many.unwrap_err()[0].field, "last_cohort");
        let ok = CohortRange::parse(g, Some(d(2026, 3, 4)), None, d(2026, 3, 18), 0).unwrap();
        assert_eq!(
            (ok.first_cohort, ok.cohorts, ok.periods),
            (d(2026, 3, 2), 3, 3)
        );
    }

    #[test]
    fn periods_stop_at_as_of_and_the_current_one_is_partial() {
        let mut facts = CohortFacts::default();
        facts.sizes.insert(
            d(2026, 1, 1),
            CohortSize {
                customers: 4,
                repeat_customers: 1,
            },
        );
        let cohorts = build_cohorts(&range(d(2026, 3, 15)), &facts, false).unwrap();
        assert_eq!(cohorts.len(), 3);
        let jan = &cohorts[0];
        assert_eq!(jan.periods.len(), 3);
        assert_eq!(
            jan.periods.iter().map(|p| p.partial).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(jan.periods[1].retention_rate, Some(0.0));
        assert_eq!(jan.repeat_purchase_rate, Some(0.25));
        // An empty cohort has periods, but no rates.
        assert_eq!(cohorts[1].size, 0);
        assert_eq!(cohorts[1].periods[0].retention_rate, None);
        assert_eq!(cohorts[1].periods[0].revenue_per_customer, None);
        // A period that ends exactly at as_of's day is complete.
        let at_end = build_cohorts(&range(d(2026, 2, 1)), &facts, false).unwrap();
        assert!(!at_end[0].periods[0].partial);
        assert!(at_end[0].periods[1].partial);
    }

    #[test]
    fn cumulative_revenue_cac_payback_and_margin() {
        let mut facts = CohortFacts::default();
        let jan = d(2026, 1, 1);
        facts.sizes.insert(
            jan,
            CohortSize {
                customers: 2,
                repeat_customers: 2,
            },
        );
        let cell = |net: i128, cost: i128, uncosted: u64| Activity {
            active_customers: 2,
            orders: 2,
            net: t(net),
            cost: t(cost),
            uncosted_purchases: uncosted,
        };
        facts.activity.insert((jan, jan), cell(100, 40, 0));
        facts.activity.insert((jan, d(2026, 2, 1)), cell(60, 10, 1));
        facts.spend.insert(jan, t(70));
        let c = &build_cohorts(&range(d(2026, 5, 1)), &facts, false).unwrap()[0];
        let cum: Vec<_> = c
            .periods
            .iter()
            .map(|p| p.cumulative_revenue_per_customer.unwrap().nanos())
            .collect();
        assert_eq!(cum, [50, 80, 80, 80]);
        assert_eq!(c.cac, Some(t(35)));
        assert_eq!(c.payback_period, Some(0));
        assert_eq!(c.ltv_to_cac, Some(80.0 / 35.0));
        assert_eq!(c.periods[0].margin, Some(t(60)));
        assert_eq!(c.periods[1].margin, None);
        assert_eq!(c.periods[2].margin, Some(Total::ZERO));
    }

    #[test]
    fn forecast_periods_follow_the_observed_ones() {
        let mut facts = CohortFacts::default();
        let jan = d(2026, 1, 1);
        facts.sizes.insert(
            jan,
            CohortSize {
                customers: 2,
                repeat_customers: 0,
            },
        );
        facts.activity.insert(
            (jan, jan),
            Activity {
                active_customers: 2,
                orders: 2,
                net: t(100),
                ..Default::default()
            },
        );
        facts.projections.insert(
            (jan, 2),
            Projection {
                purchases: 0.5,
                revenue_nanos: 20.4,
            },
        );
        facts.projections.insert(
            (jan, 3),
            Projection {
                purchases: 0.25,
                revenue_nanos: 10.0,
            },
        );
        let c = &build_cohorts(&range(d(2026, 2, 10)), &facts, true).unwrap()[0];
        assert_eq!(c.periods.len(), 4);
        assert!(!c.periods[1].forecast && c.periods[1].partial);
        assert!(c.periods[2].forecast && c.periods[3].forecast);
        assert_eq!(c.periods[2].revenue, t(20));
        assert_eq!(c.periods[3].cumulative_revenue_per_customer, Some(t(65)));
        assert_eq!(c.periods[3].expected_purchases, Some(0.25));
    }
}
