//! Planning a batch against what is already stored: which transactions are
//! new, which are duplicates, which are rejected, how refunds book onto
//! their purchases, how the per-day rollups change, and each touched
//! customer's new summary. Pure logic: storage reads the inputs under the
//! customers' locks and applies the plan in the same database transaction.
//!
//! Summaries are updated incrementally: a purchase on a day before the
//! first occasion makes that day the first occasion (the old first becomes
//! a repeat occasion); anything on the first day changes the first
//! occasion's value; anything later is repeat value; a purchase on a day
//! with no stored or earlier purchase is a new occasion.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    Amount, Batch, CustomerId, CustomerSummary, Total, Transaction, TransactionId, TransactionKind,
};

/// A transaction as stored, with what has been refunded of it so far.
#[derive(Debug, Clone)]
pub struct StoredTransaction {
    pub transaction: Transaction,
    /// Purchases: the part of `amount` already refunded.
    pub refunded: Amount,
}

/// Why an entry cannot be recorded; `index` is its position in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("transaction {index} has the key of a recorded transaction with other content")]
    Conflict { index: usize },
    #[error("transaction {index} refunds a purchase that does not exist for this customer")]
    UnknownRefundTarget { index: usize },
    #[error("transaction {index} refunds a transaction that is itself a refund")]
    RefundOfRefund { index: usize },
    #[error(
        "transaction {index} refunds more than is left of the purchase ({remaining:?} nanos left)"
    )]
    OverRefund { index: usize, remaining: Amount },
    #[error("transaction {index} would take the customer's {what} past its limit")]
    TotalOutOfRange { index: usize, what: &'static str },
}

impl PlanError {
    pub fn index(&self) -> usize {
        match self {
            PlanError::Conflict { index }
            | PlanError::UnknownRefundTarget { index }
            | PlanError::RefundOfRefund { index }
            | PlanError::OverRefund { index, .. }
            | PlanError::TotalOutOfRange { index, .. } => *index,
        }
    }
}

/// Whether one bad entry rejects the whole batch (an import batch is
/// atomic) or only itself (independent calls grouped into one commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomicity {
    AllOrNothing,
    EachOnItsOwn,
}

/// A new row for the transactions table.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub transaction: Transaction,
    pub refunded: Amount,
}

/// The change to one (customer, day) rollup row.
#[derive(Debug, Clone)]
pub struct DayDelta {
    pub customer_id: CustomerId,
    pub day: NaiveDate,
    pub purchases: i32,
    pub refunds: i32,
    pub net: Total,
    pub cost: Total,
    pub uncosted_purchases: i32,
    pub first_purchase_at: DateTime<Utc>,
    pub last_purchase_at: DateTime<Utc>,
    /// The (customer, day) row is stored: the delta is added to it.
    /// Otherwise the delta is the new row (its day's first purchase is a
    /// new occasion).
    pub stored: bool,
}

/// What storage holds that a batch depends on, read under the customers'
/// locks.
#[derive(Debug, Clone, Default)]
pub struct StoredState {
    /// Customers of the batch: `None` for one with nothing stored yet.
    pub summaries: HashMap<CustomerId, Option<CustomerSummary>>,
    /// Stored transactions among the batch's keys and its refunds' targets.
    pub transactions: HashMap<Key, StoredTransaction>,
    /// Stored purchase occasions among the (customer, day) of the batch's
    /// purchases.
    pub occasions: HashSet<(CustomerId, NaiveDate)>,
}

/// The outcome of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Recorded,
    Duplicate,
    Rejected(PlanError),
}

/// What storage must do for a batch.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub inserts: Vec<NewRow>,
    /// Refunds of already stored purchases: (customer, purchase, amount to add).
    pub refund_updates: Vec<(CustomerId, TransactionId, Amount)>,
    pub day_deltas: Vec<DayDelta>,
    /// The new summaries of the customers the batch changes.
    pub summaries: Vec<CustomerSummary>,
    /// Customers locked for the batch that turn out to have no purchase
    /// (every entry of theirs was rejected): their placeholder rows go.
    pub placeholders_to_drop: Vec<CustomerId>,
    /// Per batch entry, in batch order.
    pub outcomes: Vec<(usize, EntryOutcome)>,
}

/// A transaction's identity.
pub type Key = (CustomerId, TransactionId);

/// A [`Key`] borrowed from the batch being planned.
type KeyRef<'a> = (&'a CustomerId, &'a TransactionId);

/// Maps and sets private to planning, hashed with foldhash: much faster
/// than SipHash on short ids, and randomly seeded per map like std's.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// The running numbers of one customer while planning. Money is tracked
/// as net revenue and repeat value (net of every occasion but the first):
/// a purchase before the first occasion turns the whole previous net into
/// repeat value, so no step needs the first occasion's value on its own.
#[derive(Debug, Clone, Copy)]
struct Tally {
    first_day: Option<NaiveDate>,
    last_day: Option<NaiveDate>,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    occasions: i32,
    purchases: i32,
    refunds: i32,
    net: Total,
    repeat: Total,
    cost: Total,
    uncosted: i32,
}

/// Which of a customer's or day's figures a transaction would take past
/// its limit.
type Exceeded = &'static str;

impl Tally {
    /// The tally after a purchase, or what it would take past its limit.
    fn with_purchase(mut self, t: &Transaction, new_occasion: bool) -> Result<Self, Exceeded> {
        if new_occasion {
            self.occasions = self.occasions.checked_add(1).ok_or("purchase occasions")?;
        }
        let day = t.occasion_day;
        let amount = Total::from(t.amount);
        self.repeat = match self.first_day {
            Some(first) if day > first => self
                .repeat
                .checked_add(amount)
                .map_err(|_| "repeat value")?,
            Some(first) if day == first => self.repeat,
            // A new first occasion: everything before becomes repeat value.
            _ => {
                self.first_day = Some(day);
                self.net
            }
        };
        self.last_day = Some(self.last_day.map_or(day, |d| d.max(day)));
        self.first_at = Some(
            self.first_at
                .map_or(t.occurred_at, |a| a.min(t.occurred_at)),
        );
        self.last_at = Some(self.last_at.map_or(t.occurred_at, |a| a.max(t.occurred_at)));
        self.purchases = self.purchases.checked_add(1).ok_or("purchase count")?;
        self.net = self.net.checked_add(amount).map_err(|_| "net revenue")?;
        match t.cost {
            Some(c) => self.cost = self.cost.checked_add(c).map_err(|_| "cost")?,
            None => {
                self.uncosted = self
                    .uncosted
                    .checked_add(1)
                    .ok_or("purchases without a cost")?
            }
        }
        Ok(self)
    }

    /// The tally after a refund of a purchase made on `purchase_day`.
    fn with_refund(mut self, amount: Amount, purchase_day: NaiveDate) -> Result<Self, Exceeded> {
        if self.first_day != Some(purchase_day) {
            self.repeat = self
                .repeat
                .checked_sub(amount)
                .map_err(|_| "repeat value")?;
        }
        self.refunds = self.refunds.checked_add(1).ok_or("refund count")?;
        self.net = self.net.checked_sub(amount).map_err(|_| "net revenue")?;
        Ok(self)
    }
}

/// The running state of one customer while planning.
struct Running {
    before: Option<CustomerSummary>,
    tally: Tally,
    touched: bool,
}

impl Running {
    fn new(before: Option<CustomerSummary>) -> Self {
        let tally = match &before {
            Some(s) => Tally {
                first_day: Some(s.first_purchase_day),
                last_day: Some(s.last_purchase_day),
                first_at: Some(s.first_purchase_at),
                last_at: Some(s.last_purchase_at),
                occasions: s.purchase_occasions,
                purchases: s.purchase_count,
                refunds: s.refund_count,
                net: s.net_revenue,
                repeat: s.repeat_value,
                cost: s.cost,
                uncosted: s.uncosted_purchases,
            },
            None => Tally {
                first_day: None,
                last_day: None,
                first_at: None,
                last_at: None,
                occasions: 0,
                purchases: 0,
                refunds: 0,
                net: Total::ZERO,
                repeat: Total::ZERO,
                cost: Total::ZERO,
                uncosted: 0,
            },
        };
        Running {
            before,
            tally,
            touched: false,
        }
    }

    fn set(&mut self, tally: Tally) {
        self.tally = tally;
        self.touched = true;
    }

    fn update(self, customer_id: CustomerId) -> Option<CustomerSummary> {
        if !self.touched {
            return None;
        }
        let t = self.tally;
        Some(CustomerSummary {
            customer_id,
            first_purchase_day: t.first_day?,
            last_purchase_day: t.last_day?,
            first_purchase_at: t.first_at?,
            last_purchase_at: t.last_at?,
            purchase_occasions: t.occasions,
            purchase_count: t.purchases,
            refund_count: t.refunds,
            net_revenue: t.net,
            repeat_value: t.repeat,
            cost: t.cost,
            uncosted_purchases: t.uncosted,
        })
    }
}

impl DayDelta {
    /// (purchases, net, cost, uncosted) after adding a purchase.
    fn with_purchase(&self, t: &Transaction) -> Result<(i32, Total, Total, i32), Exceeded> {
        let over = |_| "the day's total";
        Ok((
            self.purchases.checked_add(1).ok_or("the day's purchases")?,
            self.net.checked_add(t.amount).map_err(over)?,
            match t.cost {
                Some(c) => self.cost.checked_add(c).map_err(over)?,
                None => self.cost,
            },
            self.uncosted_purchases
                .checked_add(i32::from(t.cost.is_none()))
                .ok_or("the day's purchases")?,
        ))
    }

    /// (refunds, net) after adding a refund.
    fn with_refund(&self, amount: Amount) -> Result<(i32, Total), Exceeded> {
        Ok((
            self.refunds.checked_add(1).ok_or("the day's refunds")?,
            self.net
                .checked_sub(amount)
                .map_err(|_| "the day's total")?,
        ))
    }
}

/// Plans `batch` against the stored state. Purchases are applied before
/// refunds, so a refund may name a purchase of the same batch wherever it
/// sits in the batch.
pub fn plan_batch(
    batch: &Batch,
    state: StoredState,
    atomicity: Atomicity,
) -> Result<Plan, PlanError> {
    let StoredState {
        summaries,
        transactions: stored,
        occasions,
    } = state;
    let stored = &stored;
    let mut plan = Plan::default();
    // The maps below are keyed by references into the batch (no id is
    // cloned to look one up) and hashed with foldhash: allocation and
    // SipHash were about 45 % of clvd's CPU per imported row, much of it
    // here (profile in the ingest section of docs/benchmarks.md, fifth
    // session).
    let mut running: FastMap<CustomerId, Running> = summaries
        .into_iter()
        .map(|(id, s)| (id, Running::new(s)))
        .collect();
    let mut new_purchase_rows: FastMap<KeyRef<'_>, usize> = FastMap::default();
    let mut stored_refund_adds: HashMap<Key, i64> = HashMap::new();
    let mut days: FastMap<(&CustomerId, NaiveDate), DayDelta> = FastMap::default();
    // Occasions this batch adds; `occasions` holds the stored ones.
    let mut planned_occasions: FastSet<(&CustomerId, NaiveDate)> = FastSet::default();

    let purchases = batch.entries.iter().filter(|e| e.transaction.is_purchase());
    let refunds = batch
        .entries
        .iter()
        .filter(|e| !e.transaction.is_purchase());
    for entry in purchases.chain(refunds) {
        let t = &entry.transaction;
        // The first attempt of a batch reads no stored keys (most often
        // none at all): no owned key is built then.
        let existing = if stored.is_empty() {
            None
        } else {
            stored.get(&(t.customer_id.clone(), t.transaction_id.clone()))
        };
        let outcome = if let Some(existing) = existing {
            if existing.transaction == *t {
                EntryOutcome::Duplicate
            } else {
                EntryOutcome::Rejected(PlanError::Conflict { index: entry.index })
            }
        } else {
            match &t.kind {
                TransactionKind::Purchase => {
                    let occasion = (&t.customer_id, t.occasion_day);
                    let new_occasion = !planned_occasions.contains(&occasion)
                        && (occasions.is_empty()
                            || !occasions.contains(&(t.customer_id.clone(), t.occasion_day)));
                    let runner = customer(&mut running, &t.customer_id);
                    let day_key = occasion;
                    let fresh = (!days.contains_key(&day_key)).then(|| {
                        fresh_day(&t.customer_id, t.occasion_day, t.occurred_at, !new_occasion)
                    });
                    // Every figure is checked before any is changed, so a
                    // rejected entry leaves the plan as it was.
                    let checked = runner
                        .tally
                        .with_purchase(t, new_occasion)
                        .and_then(|tally| {
                            // `fresh` is the day exactly when the plan has none yet.
                            let day = match &fresh {
                                Some(fresh) => fresh,
                                None => &days[&day_key],
                            };
                            Ok((tally, day.with_purchase(t)?))
                        });
                    match checked {
                        Err(what) => EntryOutcome::Rejected(PlanError::TotalOutOfRange {
                            index: entry.index,
                            what,
                        }),
                        Ok((tally, (purchases, net, cost, uncosted))) => {
                            runner.set(tally);
                            let day = match fresh {
                                Some(fresh) => days.entry(day_key).or_insert(fresh),
                                None => days
                                    .get_mut(&day_key)
                                    .expect("a day without a fresh row is in the plan"),
                            };
                            day.purchases = purchases;
                            day.net = net;
                            day.cost = cost;
                            day.uncosted_purchases = uncosted;
                            day.first_purchase_at = day.first_purchase_at.min(t.occurred_at);
                            day.last_purchase_at = day.last_purchase_at.max(t.occurred_at);
                            planned_occasions.insert(occasion);
                            new_purchase_rows
                                .insert((&t.customer_id, &t.transaction_id), plan.inserts.len());
                            plan.inserts.push(NewRow {
                                transaction: t.clone(),
                                refunded: Amount::ZERO,
                            });
                            EntryOutcome::Recorded
                        }
                    }
                }
                TransactionKind::Refund { of } => {
                    match refund_target(
                        &plan,
                        stored,
                        &new_purchase_rows,
                        &stored_refund_adds,
                        t,
                        of,
                        entry.index,
                    ) {
                        Err(e) => EntryOutcome::Rejected(e),
                        Ok(target) => {
                            let runner = customer(&mut running, &t.customer_id);
                            // The target lies inside the stored row's time
                            // range, so these times leave it unchanged; they
                            // only fill the proposed row.
                            let day_key = (&t.customer_id, target.occasion_day);
                            // A day not yet in the plan is a stored
                            // purchase's: its row is stored.
                            let fresh = fresh_day(
                                &t.customer_id,
                                target.occasion_day,
                                target.occurred_at,
                                true,
                            );
                            let checked = runner
                                .tally
                                .with_refund(t.amount, target.occasion_day)
                                .and_then(|tally| {
                                    let day = days.get(&day_key).unwrap_or(&fresh);
                                    Ok((tally, day.with_refund(t.amount)?))
                                });
                            match checked {
                                Err(what) => EntryOutcome::Rejected(PlanError::TotalOutOfRange {
                                    index: entry.index,
                                    what,
                                }),
                                Ok((tally, (refunds, net))) => {
                                    runner.set(tally);
                                    let day = days.entry(day_key).or_insert(fresh);
                                    day.refunds = refunds;
                                    day.net = net;
                                    // Refunds never exceed what is left of
                                    // their purchase (checked above), so
                                    // these sums stay within its amount.
                                    let amount = t.amount.nanos();
                                    if let Some(&row) = new_purchase_rows.get(&(&t.customer_id, of))
                                    {
                                        let r = &mut plan.inserts[row];
                                        r.refunded =
                                            Amount::from_nanos(r.refunded.nanos() + amount);
                                    } else {
                                        *stored_refund_adds
                                            .entry((t.customer_id.clone(), of.clone()))
                                            .or_insert(0) += amount;
                                    }
                                    plan.inserts.push(NewRow {
                                        transaction: t.clone(),
                                        refunded: Amount::ZERO,
                                    });
                                    EntryOutcome::Recorded
                                }
                            }
                        }
                    }
                }
            }
        };
        if let (EntryOutcome::Rejected(e), Atomicity::AllOrNothing) = (&outcome, atomicity) {
            return Err(e.clone());
        }
        plan.outcomes.push((entry.index, outcome));
    }

    plan.refund_updates = stored_refund_adds
        .into_iter()
        .map(|((c, t), add)| (c, t, Amount::from_nanos(add)))
        .collect();
    plan.day_deltas = days.into_values().collect();
    for (id, r) in running {
        let placeholder = r.before.is_none();
        match r.update(id.clone()) {
            Some(u) => plan.summaries.push(u),
            None if placeholder => plan.placeholders_to_drop.push(id),
            None => {}
        }
    }
    // A stable order keeps write order deterministic.
    plan.day_deltas
        .sort_by(|a, b| (&a.customer_id, a.day).cmp(&(&b.customer_id, b.day)));
    plan.refund_updates
        .sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    plan.summaries
        .sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    plan.placeholders_to_drop.sort();
    plan.outcomes.sort_by_key(|(i, _)| *i);
    Ok(plan)
}

fn customer<'a>(running: &'a mut FastMap<CustomerId, Running>, id: &CustomerId) -> &'a mut Running {
    // Looked up before an entry is made: `entry` would clone the id for
    // every transaction, found or not.
    if !running.contains_key(id) {
        running.insert(id.clone(), Running::new(None));
    }
    running
        .get_mut(id)
        .expect("a customer's running state was inserted above")
}

/// A zero delta for a (customer, day) row, with the first time seen.
fn fresh_day(
    customer_id: &CustomerId,
    day: NaiveDate,
    at: DateTime<Utc>,
    stored: bool,
) -> DayDelta {
    DayDelta {
        stored,
        customer_id: customer_id.clone(),
        day,
        purchases: 0,
        refunds: 0,
        net: Total::ZERO,
        cost: Total::ZERO,
        uncosted_purchases: 0,
        first_purchase_at: at,
        last_purchase_at: at,
    }
}

/// The purchase a refund names, if it exists, is a purchase and has enough
/// left (counting refunds planned earlier in this batch).
fn refund_target(
    plan: &Plan,
    stored: &HashMap<Key, StoredTransaction>,
    new_purchase_rows: &FastMap<KeyRef<'_>, usize>,
    stored_refund_adds: &HashMap<Key, i64>,
    t: &Transaction,
    of: &TransactionId,
    index: usize,
) -> Result<Transaction, PlanError> {
    let target_key = (t.customer_id.clone(), of.clone());
    let (target, remaining) = if let Some(&row) = new_purchase_rows.get(&(&t.customer_id, of)) {
        let r = &plan.inserts[row];
        (
            r.transaction.clone(),
            r.transaction.amount.nanos() - r.refunded.nanos(),
        )
    } else if let Some(s) = stored.get(&target_key) {
        if !s.transaction.is_purchase() {
            return Err(PlanError::RefundOfRefund { index });
        }
        let pending = stored_refund_adds.get(&target_key).copied().unwrap_or(0);
        (
            s.transaction.clone(),
            s.transaction.amount.nanos() - s.refunded.nanos() - pending,
        )
    } else {
        return Err(PlanError::UnknownRefundTarget { index });
    };
    if t.amount.nanos() > remaining {
        return Err(PlanError::OverRefund {
            index,
            remaining: Amount::from_nanos(remaining),
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::BatchEntry;

    fn t(customer: &str, id: &str, day: u32, cents: i64, kind: TransactionKind) -> Transaction {
        let at = Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).unwrap();
        Transaction {
            customer_id: CustomerId::parse(customer).unwrap(),
            transaction_id: TransactionId::parse(id).unwrap(),
            occurred_at: at,
            occasion_day: at.date_naive(),
            kind,
            amount: Amount::from_nanos(cents * 10_000_000),
            cost: None,
        }
    }

    fn batch(ts: Vec<Transaction>) -> Batch {
        Batch {
            entries: ts
                .into_iter()
                .enumerate()
                .map(|(index, transaction)| BatchEntry { index, transaction })
                .collect(),
            repeats: 0,
        }
    }

    fn refund_of(of: &str) -> TransactionKind {
        TransactionKind::Refund {
            of: TransactionId::parse(of).unwrap(),
        }
    }

    fn new_customers(names: &[&str]) -> StoredState {
        StoredState {
            summaries: names
                .iter()
                .map(|n| (CustomerId::parse(n).unwrap(), None))
                .collect(),
            ..StoredState::default()
        }
    }

    #[test]
    fn an_earlier_day_becomes_the_first_occasion_and_refunds_book_on_their_day() {
        let b = batch(vec![
            t("c", "late", 20, 5_000, TransactionKind::Purchase),
            t("c", "early", 3, 1_000, TransactionKind::Purchase),
            t("c", "same-day", 3, 500, TransactionKind::Purchase),
            t("c", "r", 25, 200, refund_of("early")),
        ]);
        let plan = plan_batch(&b, new_customers(&["c"]), Atomicity::AllOrNothing).unwrap();
        let s = &plan.summaries[0];
        assert_eq!(s.purchase_occasions, 2);
        assert_eq!(s.first_purchase_day.to_string(), "2026-01-03");
        assert_eq!(
            s.net_revenue.nanos(),
            (5_000 + 1_000 + 500 - 200) * 10_000_000
        );
        assert_eq!(
            s.repeat_value.nanos(),
            5_000 * 10_000_000,
            "the refund lowers the first occasion only"
        );
    }

    #[test]
    fn all_or_nothing_stops_at_the_first_rejection() {
        let b = batch(vec![
            t("c", "p", 1, 1_000, TransactionKind::Purchase),
            t("c", "r", 2, 1_001, refund_of("p")),
        ]);
        let err = plan_batch(&b, new_customers(&["c"]), Atomicity::AllOrNothing).unwrap_err();
        assert_eq!(
            err,
            PlanError::OverRefund {
                index: 1,
                remaining: Amount::from_nanos(1_000 * 10_000_000)
            }
        );
    }

    #[test]
    fn each_on_its_own_rejects_only_the_bad_entry_and_drops_empty_new_customers() {
        let b = batch(vec![
            t("a", "p", 1, 1_000, TransactionKind::Purchase),
            t("b", "r", 2, 100, refund_of("missing")),
            t("a", "r1", 2, 600, refund_of("p")),
            t("a", "r2", 2, 600, refund_of("p")),
        ]);
        let plan = plan_batch(&b, new_customers(&["a", "b"]), Atomicity::EachOnItsOwn).unwrap();
        assert_eq!(
            plan.outcomes,
            vec![
                (0, EntryOutcome::Recorded),
                (
                    1,
                    EntryOutcome::Rejected(PlanError::UnknownRefundTarget { index: 1 })
                ),
                (2, EntryOutcome::Recorded),
                (
                    3,
                    EntryOutcome::Rejected(PlanError::OverRefund {
                        index: 3,
                        remaining: Amount::from_nanos(400 * 10_000_000)
                    })
                ),
            ]
        );
        assert_eq!(
            plan.placeholders_to_drop,
            vec![CustomerId::parse("b").unwrap()]
        );
        assert_eq!(plan.summaries.len(), 1);
        assert_eq!(plan.summaries[0].net_revenue.nanos(), 400 * 10_000_000);
        assert_eq!(plan.inserts.len(), 2);
    }

    #[test]
    fn a_stored_identical_transaction_is_a_duplicate_and_other_content_a_conflict() {
        let stored_t = t("c", "p", 1, 1_000, TransactionKind::Purchase);
        let mut state = new_customers(&[]);
        state.transactions.insert(
            (
                stored_t.customer_id.clone(),
                stored_t.transaction_id.clone(),
            ),
            StoredTransaction {
                transaction: stored_t.clone(),
                refunded: Amount::ZERO,
            },
        );
        let dup = plan_batch(
            &batch(vec![stored_t.clone()]),
            state.clone(),
            Atomicity::AllOrNothing,
        )
        .unwrap();
        assert_eq!(dup.outcomes, vec![(0, EntryOutcome::Duplicate)]);
        assert!(dup.inserts.is_empty());
        let other = t("c", "p", 1, 1_001, TransactionKind::Purchase);
        let err = plan_batch(&batch(vec![other]), state, Atomicity::AllOrNothing).unwrap_err();
        assert_eq!(err, PlanError::Conflict { index: 0 });
    }

    #[test]
    fn an_entry_that_would_pass_a_total_limit_is_rejected_and_changes_nothing() {
        let c = CustomerId::parse("c").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let near_limit = Total::from_nanos(crate::domain::MAX_TOTAL_NANOS - 5).unwrap();
        let mut state = new_customers(&["d"]);
        state.summaries.insert(
            c.clone(),
            Some(CustomerSummary {
                customer_id: c.clone(),
                first_purchase_day: at.date_naive(),
                last_purchase_day: at.date_naive(),
                first_purchase_at: at,
                last_purchase_at: at,
                purchase_occasions: 1,
                purchase_count: 1,
                refund_count: 0,
                net_revenue: near_limit,
                repeat_value: Total::ZERO,
                cost: Total::ZERO,
                uncosted_purchases: 1,
            }),
        );
        state.occasions.insert((c.clone(), at.date_naive()));
        let b = batch(vec![
            t("c", "over", 2, 1, TransactionKind::Purchase),
            t("d", "fine", 2, 100, TransactionKind::Purchase),
        ]);
        let plan = plan_batch(&b, state.clone(), Atomicity::EachOnItsOwn).unwrap();
        assert_eq!(
            plan.outcomes,
            vec![
                (
                    0,
                    EntryOutcome::Rejected(PlanError::TotalOutOfRange {
                        index: 0,
                        what: "net revenue"
                    })
                ),
                (1, EntryOutcome::Recorded),
            ]
        );
        let only_d = |id: &CustomerId| id.as_str() == "d";
        assert!(plan
            .inserts
            .iter()
            .all(|r| only_d(&r.transaction.customer_id)));
        assert!(plan.day_deltas.iter().all(|d| only_d(&d.customer_id)));
        assert!(plan.summaries.iter().all(|s| only_d(&s.customer_id)));
        assert_eq!(
            plan_batch(&b, state, Atomicity::AllOrNothing).unwrap_err(),
            PlanError::TotalOutOfRange {
                index: 0,
                what: "net revenue"
            }
        );
    }
}
