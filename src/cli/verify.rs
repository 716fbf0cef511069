//! `vecport verify SNAPSHOT_DIR`

use std::path::PathBuf;

use crate::snapshot::Snapshot;

use super::{EXIT_PROBLEMS, out};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot directory.
    pub snapshot: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (report, opened) = match Snapshot::open(&args.snapshot) {
        Ok(s) => (s.verify(), true),
        Err(e) => (
            crate::snapshot::VerifyReport {
                problems: vec![e],
                ..Default::default()
            },
            false,
        ),
    };
    if args.json {
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        out(serde_json::json!({
            "ok": report.is_ok(),
            "manifest_ok": opened,
            "files": report.files,
            "bytes": report.bytes,
            "rows": report.rows,
            "problems": problems,
        })
        .to_string())?;
    } else if report.is_ok() {
        out(format!(
            "ok: manifest and {} part file(s) verified, {} rows, {} bytes",
            report.files, report.rows, report.bytes
        ))?;
    } else {
        for p in &report.problems {
            out(format!("BAD {p}"))?;
        }
        out(format!(
            "{} problem(s) found; the snapshot must not be imported",
            report.problems.len()
        ))?;
    }
    Ok(if report.is_ok() { 0 } else { EXIT_PROBLEMS })
}
