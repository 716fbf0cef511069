//! `vecport verify SNAPSHOT`

use crate::error::Category;
use crate::snapshot::Snapshot;
use crate::storage::Location;

use super::{EXIT_PROBLEMS, out};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot: a directory, or a location in object storage (s3://…, az://…, gs://…, https://…).
    pub snapshot: String,
    /// Also decode every row with the checks `import` runs (ids, metadata
    /// JSON, vector shapes), hashing each part again over the bytes
    /// decoded. Reads every byte once more; without it `verify` hashes the
    /// parts and checks their Parquet footers only.
    #[arg(long)]
    pub deep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let location = Location::parse(&args.snapshot)?;
    // Credentials refused, storage unreachable: not a verdict on the snapshot.
    let opened = match Snapshot::open_at(&location) {
        Err(e) if !matches!(e.category(), Category::Snapshot | Category::Io) => {
            return Err(e.into());
        }
        opened => opened,
    };
    let (report, opened) = match opened {
        Ok(s) if args.deep => (
            s.verify_deep(&s.manifest().collections.iter().collect::<Vec<_>>()),
            true,
        ),
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
            "decoded_rows": args.deep.then_some(report.decoded),
            "problems": problems,
            "notes": report.notes,
        })
        .to_string())?;
    } else if report.is_ok() {
        for note in &report.notes {
            out(format!("note: {note}"))?;
        }
        out(format!(
            "ok: manifest and {} part file(s) verified, {} rows, {} bytes{}",
            report.files,
            report.rows,
            report.bytes,
            if args.deep {
                format!("; {} rows decoded", report.decoded)
            } else {
                String::new()
            }
        ))?;
    } else {
        // Object storage that cannot be reached is no verdict either.
        if let Some(e) = report
            .problems
            .iter()
            .find(|p| !matches!(p.category(), Category::Snapshot | Category::Io))
        {
            anyhow::bail!("cannot verify {location}: {e}");
        }
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
