//! Writes the example data set of the README's quick start:
//!
//! ```text
//! cargo run --release --example make_example_data [-- OUT]
//! ```
//!
//! OUT defaults to `examples/data/transactions.csv`. What the data is and
//! how it is drawn: `generate.rs`; the test `tests/api/example_data.rs`
//! checks that the committed file is what this writes.

mod generate;

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/transactions.csv"),
        PathBuf::from,
    );
    let csv = generate::csv();
    std::fs::write(&out, &csv)?;
    eprintln!(
        "wrote {} ({} rows, {} bytes)",
        out.display(),
        csv.lines().count() - 1,
        csv.len()
    );
    Ok(())
}
