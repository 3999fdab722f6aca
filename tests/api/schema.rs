//! The schema can be distributed by customer_id (Citus, deploy/citus.sql):
//! citus.sql decides for every table of the migrated schema, and every
//! primary key, unique constraint and unique index of a distributed table
//! includes its distribution column, without which Citus refuses the table.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use crate::helpers::fresh_database;

const CITUS_SQL: &str = include_str!("../../deploy/citus.sql");

/// What citus.sql does with each table.
#[derive(Debug, Default)]
struct CitusPlan {
    /// table -> (distribution column, colocate_with)
    distributed: BTreeMap<String, (String, Option<String>)>,
    reference: BTreeSet<String>,
}

/// The arguments of every `function(...)` call outside comments, each as
/// (name for `name => value`, value without quotes).
fn calls(sql: &str, function: &str) -> Vec<Vec<(Option<String>, String)>> {
    let open = format!("{function}(");
    sql.lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .filter_map(|line| {
            let args = &line[line.find(&open)? + open.len()..];
            let args = &args[..args.find(')').expect("call closed on its line")];
            Some(
                args.split(',')
                    .map(|arg| {
                        let (name, value) = match arg.split_once("=>") {
                            Some((name, value)) => (Some(name.trim().to_owned()), value),
                            None => (None, arg),
                        };
                        (name, value.trim().trim_matches('\'').to_owned())
                    })
                    .collect(),
            )
        })
        .collect()
}

fn plan(sql: &str) -> CitusPlan {
    let mut plan = CitusPlan::default();
    for args in calls(sql, "create_distributed_table") {
        let positional: Vec<&str> = args
            .iter()
            .filter(|(name, _)| name.is_none())
            .map(|(_, value)| value.as_str())
            .collect();
        let [table, column] = positional[..] else {
            panic!("create_distributed_table needs a table and a column: {args:?}");
        };
        let colocate_with = args
            .iter()
            .find(|(name, _)| name.as_deref() == Some("colocate_with"))
            .map(|(_, value)| value.clone());
        plan.distributed
            .insert(table.to_owned(), (column.to_owned(), colocate_with));
    }
    for args in calls(sql, "create_reference_table") {
        plan.reference.insert(args[0].1.clone());
    }
    plan
}

async fn strings(pool: &PgPool, sql: &str, table: &str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("catalog query")
}

/// Every way in which the plan and the database's schema disagree, each
/// naming the table (and key).
async fn problems(pool: &PgPool, plan: &CitusPlan) -> Vec<String> {
    let tables: BTreeSet<String> = strings(
        pool,
        "SELECT c.relname::text FROM pg_class c
         WHERE c.relnamespace = current_schema()::regnamespace
           AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND c.relname <> $1",
        "_sqlx_migrations",
    )
    .await
    .into_iter()
    .collect();
    let mut problems = Vec::new();
    for table in plan.distributed.keys().chain(&plan.reference) {
        if !tables.contains(table) {
            problems.push(format!(
                "deploy/citus.sql names {table}, which is not a table of the schema"
            ));
        }
    }
    for table in &tables {
        let columns = strings(
            pool,
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
        .await;
        let has_customer_id = columns.iter().any(|c| c == "customer_id");
        match (
            plan.distributed.get(table),
            plan.reference.contains(table),
        ) {
            (None, false) => problems.push(format!(
                "table {table}: no create_distributed_table or create_reference_table in deploy/citus.sql"
            )),
            (Some(_), true) => problems.push(format!(
                "table {table}: both distributed and a reference table in deploy/citus.sql"
            )),
            (None, true) if has_customer_id => problems.push(format!(
                "table {table}: has customer_id but is a reference table (copied to every node); distribute it by customer_id"
            )),
            (None, true) => {}
            (Some((column, colocate_with)), false) => {
                if column != "customer_id" {
                    problems.push(format!(
                        "table {table}: distributed by {column}, not customer_id"
                    ));
                }
                if !columns.contains(column) {
                    problems.push(format!(
                        "table {table}: has no distribution column {column}"
                    ));
                }
                if let Some(with) = colocate_with {
                    if !plan.distributed.contains_key(with) {
                        problems.push(format!(
                            "table {table}: colocated with {with}, which is not distributed"
                        ));
                    }
                }
                for (key, kind, key_columns) in unique_keys(pool, table).await {
                    if !key_columns.contains(column) {
                        problems.push(format!(
                            "table {table}: {kind} {key} ({}) does not include the distribution column {column}",
                            key_columns.join(", ")
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The table's primary key, unique constraints and unique indexes: (name,
/// kind, key columns in order; INCLUDE columns do not count).
async fn unique_keys(pool: &PgPool, table: &str) -> Vec<(String, String, Vec<String>)> {
    sqlx::query_as(
        "SELECT ic.relname::text,
                CASE WHEN i.indisprimary THEN 'primary key'
                     WHEN EXISTS (SELECT 1 FROM pg_constraint c
                                  WHERE c.conindid = i.indexrelid AND c.contype = 'u')
                     THEN 'unique constraint'
                     ELSE 'unique index' END,
                ARRAY(SELECT coalesce(a.attname::text, '(expression)')
                      FROM generate_series(0, i.indnkeyatts - 1) AS k
                      LEFT JOIN pg_attribute a
                             ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k]
                      ORDER BY k)
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         WHERE t.relname = $1 AND t.relnamespace = current_schema()::regnamespace
           AND i.indisunique
         ORDER BY 1",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("unique keys")
}

#[tokio::test]
async fn citus_sql_distributes_every_table_and_every_unique_key_includes_customer_id() {
    let (_, pool) = fresh_database().await;
    let plan = plan(CITUS_SQL);
    assert!(
        plan.distributed.contains_key("transactions") && plan.reference.contains("models"),
        "deploy/citus.sql parsed: {plan:?}"
    );
    let problems = problems(&pool, &plan).await;
    assert!(
        problems.is_empty(),
        "deploy/citus.sql and the migrated schema disagree:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn keys_without_customer_id_and_tables_without_a_decision_are_named() {
    let (_, pool) = fresh_database().await;
    for ddl in [
        "CREATE UNIQUE INDEX transactions_by_id ON transactions (transaction_id)",
        "ALTER TABLE customer_days ADD CONSTRAINT customer_days_day_key UNIQUE (day)",
        "CREATE UNIQUE INDEX customer_scores_by_rank ON customer_scores (model_version, value_at_risk) INCLUDE (customer_id)",
        "CREATE TABLE undecided (id bigint PRIMARY KEY)",
        "CREATE TABLE customer_notes (customer_id text PRIMARY KEY)",
    ] {
        sqlx::query(ddl).execute(&pool).await.expect(ddl);
    }
    let plan = plan(&format!(
        "{CITUS_SQL}\n\
         SELECT create_reference_table('customer_notes');\n\
         -- SELECT create_reference_table('undecided');\n\
         SELECT create_reference_table('dropped_long_ago');\n"
    ));
    let problems = problems(&pool, &plan).await;
    let expected = [
        "deploy/citus.sql names dropped_long_ago, which is not a table of the schema",
        "table customer_days: unique constraint customer_days_day_key (day) does not include the distribution column customer_id",
        "table customer_notes: has customer_id but is a reference table",
        "table customer_scores: unique index customer_scores_by_rank (model_version, value_at_risk) does not include the distribution column customer_id",
        "table transactions: unique index transactions_by_id (transaction_id) does not include the distribution column customer_id",
        "table undecided: no create_distributed_table or create_reference_table",
    ];
    for e in expected {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "missing {e:?} in:\n{}",
            problems.join("\n")
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}
