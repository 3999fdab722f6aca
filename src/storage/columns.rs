//! Parameters bound by column name: a struct whose fields are named for the
//! columns they fill, bound in one go, so that no statement lists `$n`
//! numbers by hand and no value can land in another column's place.
//!
//! [`columns!`] declares such a struct: each field's name is its column's,
//! and its optional cast (`as "::text[]"`) follows the parameter. The field
//! list is the one place that names, orders and binds the columns; the
//! helpers below write the matching SQL around the parameters through
//! sqlx's [`QueryBuilder`], which numbers each parameter as it binds it.
//! A field is a whole column array for `unnest` (the batched writes of
//! ingest), or one value (a one-row insert).

use sqlx::{Postgres, QueryBuilder};

/// Columns bound together; see [`columns!`].
pub(super) trait Columns<'a> {
    /// The column names, in the order [`Columns::push_binds`] binds them.
    const NAMES: &'static [&'static str];

    /// Pushes `$1::cast, $2::cast, ...`: one parameter per column, bound
    /// to its value, in [`Columns::NAMES`] order.
    fn push_binds(self, q: &mut QueryBuilder<'a, Postgres>);
}

/// Declares a struct of columns and implements [`Columns`] for it. A
/// declarative macro rather than a derive crate: the whole of it is the
/// field list, a name list and a bind per field.
///
/// - `struct Name { field: Type, ... }` (with or without a lifetime): one
///   value per column, for a one-row statement.
/// - `struct Name<'a> of Row { field: Type as "::cast[]", ... }`: one array
///   per column, for `unnest`; `Row` is declared beside it with one `Type`
///   per field, and `Name` is collected from rows (`FromIterator<Row>`), so
///   that the values of a row are given by name, together.
macro_rules! columns {
    (
        $(#[$meta:meta])*
        struct $name:ident<$a:lifetime> of $row:ident {
            $( $(#[$field_meta:meta])* $field:ident: $ty:ty as $cast:literal, )+
        }
    ) => {
        /// One row of
        #[doc = concat!("[`", stringify!($name), "`].")]
        struct $row<$a> {
            $( $(#[$field_meta])* $field: $ty, )+
        }

        $crate::storage::columns::columns! {
            $(#[$meta])*
            struct $name<$a> {
                $( $field: Vec<$ty> as $cast, )+
            }
        }

        impl<$a> FromIterator<$row<$a>> for $name<$a> {
            fn from_iter<I: IntoIterator<Item = $row<$a>>>(rows: I) -> Self {
                let rows = rows.into_iter();
                let n = rows.size_hint().0;
                let mut columns = Self { $( $field: Vec::with_capacity(n), )+ };
                for row in rows {
                    $( columns.$field.push(row.$field); )+
                }
                columns
            }
        }
    };
    (
        $(#[$meta:meta])*
        struct $name:ident $(<$a:lifetime>)? {
            $( $(#[$field_meta:meta])* $field:ident: $ty:ty $(as $cast:literal)?, )+
        }
    ) => {
        $(#[$meta])*
        struct $name $(<$a>)? {
            $( $(#[$field_meta])* $field: $ty, )+
        }

        impl<'q $(, $a)?> $crate::storage::columns::Columns<'q> for $name $(<$a>)?
        where
            Self: 'q,
        {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            fn push_binds(self, q: &mut sqlx::QueryBuilder<'q, sqlx::Postgres>) {
                let mut binds = q.separated(", ");
                $(
                    binds.push_bind(self.$field);
                    $( binds.push_unseparated($cast); )?
                )+
            }
        }
    };
}
pub(super) use columns;

/// Pushes `name, name, ...`, each prefixed `alias.` when `alias` is given.
pub(super) fn push_names<'a, C: Columns<'a>>(q: &mut QueryBuilder<'a, Postgres>, alias: &str) {
    let mut names = q.separated(", ");
    for name in C::NAMES {
        if alias.is_empty() {
            names.push(name);
        } else {
            names.push(format_args!("{alias}.{name}"));
        }
    }
}

/// Pushes `unnest($1::type[], ...) AS alias(name, ...)`: the column arrays
/// as rows, each column named.
pub(super) fn push_unnest<'a, C: Columns<'a>>(
    q: &mut QueryBuilder<'a, Postgres>,
    columns: C,
    alias: &str,
) {
    q.push("unnest(");
    columns.push_binds(q);
    q.push(format_args!(") AS {alias}("));
    push_names::<C>(q, "");
    q.push(")");
}

/// Pushes `(name, ...) SELECT u.name, ... FROM unnest(...) AS u(name, ...)`:
/// an INSERT's target columns and its rows, from the column arrays.
pub(super) fn push_insert_rows<'a, C: Columns<'a>>(q: &mut QueryBuilder<'a, Postgres>, columns: C) {
    q.push("(");
    push_names::<C>(q, "");
    q.push(") SELECT ");
    push_names::<C>(q, "u");
    q.push(" FROM ");
    push_unnest(q, columns, "u");
}

/// Pushes `(name, ...) VALUES ($1, ...)`: a one-row INSERT.
pub(super) fn push_insert_values<'a, C: Columns<'a>>(
    q: &mut QueryBuilder<'a, Postgres>,
    columns: C,
) {
    q.push("(");
    push_names::<C>(q, "");
    q.push(") VALUES (");
    columns.push_binds(q);
    q.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    columns! {
        /// Two column arrays.
        struct Pairs<'a> of Pair {
            customer_id: &'a str as "::text[]",
            day_count: i32 as "::int4[]",
        }
    }

    columns! {
        /// Two values, one cast.
        struct Values {
            customer_id: String as "::text",
            day_count: i32,
        }
    }

    #[test]
    fn names_and_parameters_follow_the_declaration() {
        let ids = ["a", "b"];
        let mut q = QueryBuilder::<Postgres>::new("INSERT INTO t ");
        let pairs: Pairs = ids
            .into_iter()
            .zip(1..)
            .map(|(customer_id, day_count)| Pair {
                customer_id,
                day_count,
            })
            .collect();
        assert_eq!(
            (pairs.customer_id.as_slice(), pairs.day_count.as_slice()),
            (&ids[..], &[1, 2][..])
        );
        push_insert_rows(&mut q, pairs);
        q.push("; INSERT INTO t ");
        push_insert_values(
            &mut q,
            Values {
                customer_id: "c".to_owned(),
                day_count: 3,
            },
        );
        assert_eq!(
            q.sql(),
            "INSERT INTO t (customer_id, day_count) SELECT u.customer_id, u.day_count \
             FROM unnest($1::text[], $2::int4[]) AS u(customer_id, day_count); \
             INSERT INTO t (customer_id, day_count) VALUES ($3::text, $4)"
        );
    }
}
