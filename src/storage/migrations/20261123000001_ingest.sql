-- Transactions, per-customer per-day rollups and per-customer summaries.
--
-- Every primary and unique key starts with customer_id, so that each table
-- can be distributed by customer_id (Citus) without change.
-- Money is integer nanos of the reporting currency (exact).

CREATE TABLE transactions (
    customer_id             text        NOT NULL,
    transaction_id          text        NOT NULL,
    -- 1 = purchase, 2 = refund
    kind                    smallint    NOT NULL CHECK (kind IN (1, 2)),
    occurred_at             timestamptz NOT NULL,
    -- business-calendar day of occurred_at (purchase occasion); for a refund,
    -- its own day (the refunded value is booked on the purchase's day row)
    occasion_day            date        NOT NULL,
    amount_nanos            bigint      NOT NULL CHECK (amount_nanos >= 0),
    cost_nanos              bigint      CHECK (cost_nanos >= 0),
    refunded_transaction_id text,
    -- purchases: how much of amount has been refunded so far
    refunded_nanos          bigint      NOT NULL DEFAULT 0 CHECK (refunded_nanos >= 0),
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, transaction_id),
    CHECK ((kind = 1) = (refunded_transaction_id IS NULL)),
    CHECK (refunded_nanos <= amount_nanos)
);

-- One row per customer and purchase occasion (a day with >= 1 purchase).
-- Refunds are booked on the row of the purchase they refund, so an
-- occasion's net value is exact however late the refund arrives.
CREATE TABLE customer_days (
    customer_id        text        NOT NULL,
    day                date        NOT NULL,
    purchases          integer     NOT NULL,
    refunds            integer     NOT NULL DEFAULT 0,
    -- purchases minus refunds of those purchases
    net_nanos          bigint      NOT NULL,
    -- sum of the costs given; uncosted_purchases counts purchases without one
    cost_nanos         bigint      NOT NULL DEFAULT 0,
    uncosted_purchases integer     NOT NULL DEFAULT 0,
    first_purchase_at  timestamptz NOT NULL,
    last_purchase_at   timestamptz NOT NULL,
    PRIMARY KEY (customer_id, day)
) WITH (fillfactor = 80);  -- room for HOT updates

-- The purchase summary the models read, kept current at ingest: always
-- exactly the aggregate of the customer's customer_days rows. Ingest locks
-- a customer by upserting this row first (creating it, zeroed, for a new
-- customer); a committed row always has purchase_occasions >= 1.
CREATE TABLE customers (
    customer_id         text        NOT NULL PRIMARY KEY,
    first_purchase_day  date,
    last_purchase_day   date,
    first_purchase_at   timestamptz,
    last_purchase_at    timestamptz,
    -- purchase occasions (x = purchase_occasions - 1)
    purchase_occasions  integer     NOT NULL DEFAULT 0,
    purchase_count      integer     NOT NULL DEFAULT 0,
    refund_count        integer     NOT NULL DEFAULT 0,
    net_revenue_nanos   bigint      NOT NULL DEFAULT 0,
    -- net value of all occasions but the first (m = this / x)
    repeat_value_nanos  bigint      NOT NULL DEFAULT 0,
    cost_nanos          bigint      NOT NULL DEFAULT 0,
    uncosted_purchases  integer     NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);  -- rewritten at every batch: room for HOT updates

-- Transactions ever recorded, for the refit trigger ("enough new
-- transactions"). Each batch adds its count to one of 64 slots picked at
-- random, in its own database transaction: exact, and concurrent batches
-- rarely touch the same row. Not customer data, so no customer_id.
CREATE TABLE ingest_counters (
    slot         smallint NOT NULL PRIMARY KEY,
    transactions bigint   NOT NULL DEFAULT 0
);
INSERT INTO ingest_counters (slot) SELECT generate_series(0, 63);
