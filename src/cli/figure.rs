//! Where a command's single figure goes: `-o/--format svg` draws it
//! instead of printing the table, to `--out FILE` or standard output;
//! `--svg FILE`, the older form, is the same as `--format svg --out FILE`.
//! Used by the commands that draw one (report cohorts, report segments,
//! model, evaluate); the others refuse `svg` before calling the server
//! ([`super::draws_figure`]).

use std::{io::Write, path::PathBuf};

use anyhow::Context;

use super::Format;

/// The figure flags a drawing command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FigureArgs {
    /// With -o/--format svg: write the figure to this file (replaced if it
    /// exists) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Same as `--format svg --out FILE` (the older form, kept).
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    pub svg: Option<PathBuf>,
}

/// Where to write a figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// The file, and the flag that named it (for errors).
    File(PathBuf, &'static str),
}

impl FigureArgs {
    /// Where the figure goes, or `None` when the command prints its table.
    /// `--out` without `svg` is an error naming it (it would be ignored).
    pub fn target(&self, format: Format) -> anyhow::Result<Option<Target>> {
        if let Some(path) = &self.svg {
            return Ok(Some(Target::File(path.clone(), "--svg")));
        }
        match (&self.out, format) {
            (Some(path), Format::Svg) => Ok(Some(Target::File(path.clone(), "--out"))),
            (None, Format::Svg) => Ok(Some(Target::Stdout)),
            (Some(_), _) => anyhow::bail!(
                "--out FILE writes a figure: it takes -o/--format svg (or use --svg FILE)"
            ),
            (None, _) => Ok(None),
        }
    }
}

impl Target {
    /// Writes the SVG document.
    pub fn write(&self, svg: &str) -> anyhow::Result<()> {
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(svg.as_bytes())?;
                out.flush()?;
                Ok(())
            }
            Target::File(path, flag) => std::fs::write(path, svg)
                .with_context(|| format!("{flag} {}: cannot write", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_flag_is_format_svg_with_out() {
        let alias = FigureArgs {
            out: None,
            svg: Some("a.svg".into()),
        };
        assert_eq!(
            alias.target(Format::Table).unwrap(),
            Some(Target::File("a.svg".into(), "--svg"))
        );
        let out = FigureArgs {
            out: Some("b.svg".into()),
            svg: None,
        };
        assert_eq!(
            out.target(Format::Svg).unwrap(),
            Some(Target::File("b.svg".into(), "--out"))
        );
        assert_eq!(
            FigureArgs::default().target(Format::Svg).unwrap(),
            Some(Target::Stdout)
        );
        assert_eq!(FigureArgs::default().target(Format::Json).unwrap(), None);
        let err = out.target(Format::Csv).unwrap_err().to_string();
        assert!(err.contains("--out") && err.contains("svg"), "{err}");
    }
}
