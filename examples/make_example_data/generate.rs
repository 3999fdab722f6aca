//! The example data set (`examples/data/transactions.csv`): synthetic,
//! CDNOW-like customers from the model crate's seeded simulator
//! ([`clv_model::simulate`]), written as the service's CSV import format.
//!
//! - 1,800 customers acquired uniformly over 18 months (2025-01-01 to
//!   2026-06-30), history up to 2026-10-31 (UTC).
//! - Purchase occasions follow BG/NBD with the parameters Fader, Hardie &
//!   Lee (2005) estimated on CDNOW (r = 0.243, α = 4.414 per week, a =
//!   0.793, b = 2.426); occasion values follow Gamma-Gamma with their CDNOW
//!   spend estimates (p = 6.25, q = 3.74, γ = 15.44), in dollars and cents.
//! - Some occasions are split into two or three orders on the same day;
//!   some orders get a partial or full refund a few days later (never
//!   after 2026-10-31), naming the order by `transaction_id`.
//!
//! Everything is drawn from seeded ChaCha8 streams, so the output is the
//! same on every run. Shared by the `make_example_data` example (which
//! writes the file) and the test that checks the committed file
//! (`tests/api/example_data.rs`).

use chrono::{Duration, NaiveDate, NaiveDateTime};
use clv_model::{
    simulate, Acquisition, BgNbdParams, GammaGammaParams, SimulationConfig, TimeResolution,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The CSV's header row.
pub const HEADER: &str =
    "customer_id,transaction_id,occurred_at,amount,kind,refunded_transaction_id";

/// Customers in the data set.
pub const CUSTOMERS: usize = 1_800;

/// Seed of the simulator and of the order/refund draws (the last day,
/// 2026-10-31, as a number).
const SEED: u64 = 20_261_031;

/// Share of occasions split into several orders on one day.
const SPLIT_SHARE: f64 = 0.06;

/// Share of orders that get a refund (half of them in full).
const REFUND_SHARE: f64 = 0.03;

/// The first day of the history (day 0 of the simulation).
pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid date")
}

/// The last day of the history: nothing happens after it.
pub fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 31).expect("a valid date")
}

/// One row before ids are given.
struct Row {
    customer: usize,
    at: NaiveDateTime,
    cents: i64,
    /// For a refund: the index (in the row list) of its purchase.
    refund_of: Option<usize>,
}

/// The whole CSV file, header included, `\n`-terminated lines.
pub fn csv() -> String {
    let history_days = (last_day() - first_day()).num_days() + 1;
    let acquisition_days =
        (NaiveDate::from_ymd_opt(2026, 7, 1).expect("a valid date") - first_day()).num_days();
    let config = SimulationConfig {
        purchases: BgNbdParams::new(0.243, 4.414 * 7.0, 0.793, 2.426)
            .expect("CDNOW's BG/NBD parameters are valid"),
        spend: Some(
            GammaGammaParams::new(6.25, 3.74, 15.44)
                .expect("CDNOW's Gamma-Gamma parameters are valid"),
        ),
        customers: CUSTOMERS,
        calibration_days: history_days as f64,
        holdout_days: 0.0,
        acquisition: Acquisition::Uniform {
            window_days: acquisition_days as f64,
        },
        resolution: TimeResolution::WholeDays,
        seed: SEED,
        record_occasions: true,
    };
    let mut customers = simulate(&config);
    // Customer ids in order of acquisition, as a shop numbers them.
    customers.sort_by(|a, b| a.acquired_at.total_cmp(&b.acquired_at));

    let mut rows: Vec<Row> = Vec::new();
    for (customer, simulated) in customers.iter().enumerate() {
        // One stream per customer, as the simulator does.
        let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0x5eed);
        rng.set_stream(customer as u64);
        for occasion in &simulated.occasions {
            let day = first_day() + Duration::days(occasion.day as i64);
            let total = ((occasion.value * 100.0).round() as i64).max(1);
            let orders = if rng.random::<f64>() < SPLIT_SHARE {
                if rng.random::<f64>() < 0.25 {
                    3
                } else {
                    2
                }
            } else {
                1
            };
            // Distinct times in business hours, in order.
            let mut seconds: Vec<i64> = (0..orders)
                .map(|_| rng.random_range(8 * 3600..22 * 3600))
                .collect();
            seconds.sort_unstable();
            seconds.dedup();
            let mut left = total;
            for (i, second) in seconds.iter().enumerate() {
                let cents = if i + 1 == seconds.len() {
                    left
                } else {
                    let share = rng.random_range(0.2..0.8);
                    ((left as f64 * share).round() as i64).clamp(1, (left - 1).max(1))
                };
                left -= cents;
                let at = day.and_hms_opt(0, 0, 0).expect("midnight") + Duration::seconds(*second);
                rows.push(Row {
                    customer,
                    at,
                    cents,
                    refund_of: None,
                });
                let purchase = rows.len() - 1;
                if cents >= 2 && rng.random::<f64>() < REFUND_SHARE {
                    let full = rng.random::<bool>();
                    let refund = if full {
                        cents
                    } else {
                        ((cents as f64 * rng.random_range(0.1..0.6)).round() as i64)
                            .clamp(1, cents - 1)
                    };
                    let later = at
                        + Duration::days(rng.random_range(1..30))
                        + Duration::seconds(rng.random_range(0..3600));
                    if later.date() <= last_day() {
                        rows.push(Row {
                            customer,
                            at: later,
                            cents: refund,
                            refund_of: Some(purchase),
                        });
                    }
                }
            }
        }
    }

    // The file lists transactions in time order, as an export would; the
    // transaction ids number them in that order.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (rows[i].at, rows[i].customer, i));
    let mut id_of = vec![0usize; rows.len()];
    for (position, &i) in order.iter().enumerate() {
        id_of[i] = position + 1;
    }
    let mut out = String::with_capacity(rows.len() * 56);
    out.push_str(HEADER);
    out.push('\n');
    for &i in &order {
        let row = &rows[i];
        let (kind, refunded) = match row.refund_of {
            Some(p) => ("refund", format!("t{:05}", id_of[p])),
            None => ("purchase", String::new()),
        };
        out.push_str(&format!(
            "c{:04},t{:05},{},{}.{:02},{},{}\n",
            row.customer + 1,
            id_of[i],
            row.at.format("%Y-%m-%dT%H:%M:%SZ"),
            row.cents / 100,
            row.cents % 100,
            kind,
            refunded,
        ));
    }
    out
}
