//! The README's examples, run in order against a live server, so that the
//! README cannot drift from the service.
//!
//! Every indented block (a run of indented lines) whose first word is `clvd` or `grpcurl` (after
//! any `VAR=value` assignments) is an example. It runs under
//! `bash -euo pipefail` from the repository root, with this build's `clvd`
//! first on PATH, `CLVD_SERVER` pointing at the test server and the
//! README's `127.0.0.1:50051` replaced by the test server's address. It must
//! exit 0, unless an HTML comment on the line before the block says
//! otherwise:
//!
//! - `<!-- readme-test: skip REASON -->`: not run here (the reason says
//!   where it is exercised instead);
//! - `<!-- readme-test: fails CODE -->`: must fail, printing CODE;
//! - `<!-- readme-test: prints TEXT -->`: must succeed and print TEXT.

use std::{path::Path, process::Command};

use crate::helpers::*;

/// One runnable block of the README.
#[derive(Debug)]
pub struct Example {
    /// 1-based line of the block's first line.
    pub line: usize,
    /// The `readme-test:` directive before it, if any.
    pub directive: Option<String>,
    pub script: String,
}

/// Whether a block is a command to run: its first word, after any
/// `VAR=value` assignments, is `clvd` or `grpcurl`.
fn is_command(first_line: &str) -> bool {
    first_line
        .split_whitespace()
        .find(|w| !w.contains('='))
        .is_some_and(|w| w == "clvd" || w == "grpcurl")
}

/// The README's runnable examples, in order.
pub fn examples(readme: &str) -> Vec<Example> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let starts_block = lines[i].starts_with("    ")
            && !lines[i].trim().is_empty()
            && (i == 0 || lines[i - 1].trim().is_empty());
        if !starts_block {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while end < lines.len() {
            if lines[end].starts_with("    ") {
                end += 1;
            } else {
                break;
            }
        }
        let body: Vec<&str> = lines[start..end]
            .iter()
            .map(|l| l.strip_prefix("    ").unwrap_or(""))
            .collect();
        if is_command(body[0]) {
            // The directive is the last non-blank line before the block.
            let directive = lines[..start]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- readme-test:"))
                .and_then(|d| d.strip_suffix("-->"))
                .map(|d| d.trim().to_owned());
            out.push(Example {
                line: start + 1,
                directive,
                script: body.join("\n"),
            });
        }
        i = end;
    }
    out
}

/// What running one example printed.
struct Ran {
    ok: bool,
    output: String,
}

fn run(example: &Example, addr: &str, bin_dir: &Path, root: &Path) -> Ran {
    let script = example
        .script
        .replace("127.0.0.1:50051", addr)
        .replace("localhost:50051", addr);
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(root)
        .env("PATH", path)
        .env("CLVD_SERVER", format!("http://{addr}"))
        .env_remove("CLVD_API_KEY")
        .output()
        .expect("bash runs");
    Ran {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test]
async fn every_readme_example_runs_against_a_live_server() {
    if grpcurl().is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let examples = examples(&readme);
    // A guard against a parser that finds nothing: the README has a quick
    // start and an example for every method.
    assert!(
        examples.len() >= 25,
        "only {} examples found",
        examples.len()
    );

    let bin_dir = tempdir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clvd"), bin_dir.join("clvd")).unwrap();
    // As the README's quick start runs it: CLVD_AUTH=off, the defaults
    // (including the model selection, which the harness otherwise pins to
    // BG/NBD).
    let app = spawn_app_with(|s| s.model_selection = Default::default()).await;
    let addr = app.addr.to_string();

    let (mut ran, mut skipped) = (0, 0);
    for example in &examples {
        let directive = example.directive.as_deref().unwrap_or("");
        if let Some(reason) = directive.strip_prefix("skip") {
            assert!(
                !reason.trim().is_empty(),
                "README line {}: a skip needs a reason",
                example.line
            );
            skipped += 1;
            continue;
        }
        let addr = addr.clone();
        let (bin, root_dir) = (bin_dir.clone(), root.to_path_buf());
        let ex = Example {
            line: example.line,
            directive: example.directive.clone(),
            script: example.script.clone(),
        };
        let result = tokio::task::spawn_blocking(move || run(&ex, &addr, &bin, &root_dir))
            .await
            .unwrap();
        let context = format!(
            "README line {}:\n{}\n--- printed:\n{}",
            example.line, example.script, result.output
        );
        if let Some(code) = directive.strip_prefix("fails") {
            assert!(!result.ok, "should have failed: {context}");
            assert!(result.output.contains(code.trim()), "{context}");
        } else {
            assert!(result.ok, "failed: {context}");
            if let Some(text) = directive.strip_prefix("prints") {
                assert!(result.output.contains(text.trim()), "{context}");
            }
        }
        ran += 1;
    }
    eprintln!("README: {ran} examples ran, {skipped} skipped (each with its reason)");
    app.stop().await;
}

/// A fresh directory under the system temp dir.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("clvd-readme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_example_parser_finds_blocks_and_their_directives() {
    let readme = "text\n\n    grpcurl -plaintext 127.0.0.1:50051 list\n\n<!-- readme-test: fails NotFound -->\n\n    FOO=1 clvd value x \\\n      --as-of 2026-10-31\n\n    Code: NotFound\n\n    cargo run\n";
    let found = examples(readme);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].line, 3);
    assert_eq!(found[0].directive, None);
    assert_eq!(
        found[1].script,
        "FOO=1 clvd value x \\\n  --as-of 2026-10-31"
    );
    assert_eq!(found[1].directive.as_deref(), Some("fails NotFound"));
}
