//! `vecport import SNAPSHOT_DIR TARGET_URL`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::connectors::{self, ExistingTarget};
use crate::pipeline::{self, ImportOptions};

use super::progress::Bars;

/// What to do when a target collection exists.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IfExists {
    /// Stop before writing anything.
    Refuse,
    /// Upsert into it when dimension and metric match.
    Append,
    /// Delete it and create it anew.
    Replace,
}

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot directory.
    pub snapshot: PathBuf,
    /// The target database, e.g. chroma://localhost:8000 or chroma://localhost:8000/new-name.
    pub target: String,
    /// Import only this collection of the snapshot (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Import collection FROM under the name TO (repeatable).
    #[arg(long = "rename", value_name = "FROM=TO", value_parser = parse_rename)]
    pub renames: Vec<(String, String)>,
    /// What to do when a target collection exists.
    #[arg(long, value_enum, default_value_t = IfExists::Refuse)]
    pub if_exists: IfExists,
    /// Write requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_owned(), to.to_owned()))
        }
        _ => Err(format!("`{s}` is not FROM=TO")),
    }
}

pub async fn run(args: Args, quiet: bool) -> anyhow::Result<u8> {
    let sink = connectors::open(&args.target)?;
    let options = ImportOptions {
        collections: args.collections,
        renames: args.renames,
        existing: match args.if_exists {
            IfExists::Refuse => ExistingTarget::Refuse,
            IfExists::Append => ExistingTarget::Append,
            IfExists::Replace => ExistingTarget::Replace,
        },
        concurrency: args.concurrency as usize,
        ..ImportOptions::default()
    };
    let started = Instant::now();
    let report = pipeline::import(&args.snapshot, sink.as_ref(), &options, &Bars::new(quiet))
        .await
        .with_context(|| {
            format!(
                "import of {} into {} failed",
                args.snapshot.display(),
                sink.endpoint()
            )
        })?;
    let secs = started.elapsed().as_secs_f64();
    if !quiet {
        for c in &report.collections {
            eprintln!(
                "imported `{}` → `{}`: {} records written, target counts {}",
                c.source, c.target, c.records, c.target_count
            );
            for note in &c.notes {
                eprintln!("vecport: note: `{}`: {note}", c.target);
            }
        }
        let records: u64 = report.collections.iter().map(|c| c.records).sum();
        eprintln!(
            "imported {records} records in {secs:.1}s ({:.0} records/s)",
            records as f64 / secs.max(1e-9)
        );
    }
    Ok(0)
}
