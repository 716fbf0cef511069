//! `vecport copy FROM TO`

use std::time::Instant;

use anyhow::Context;

use crate::pipeline::copy::{CopyOptions, copy};
use crate::storage::Location;

use super::progress::Bars;

/// Arguments of `copy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot to copy: a directory, or s3://…, az://…, gs://…, https://….
    pub from: String,
    /// Where the copy goes: a new (or empty) directory, or an empty prefix
    /// in object storage.
    pub to: String,
    /// Continue the unfinished copy at TO, after the parts it completed.
    #[arg(long)]
    pub resume: bool,
    /// Parts copied at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
}

pub fn run(args: Args, quiet: bool) -> anyhow::Result<u8> {
    let from = Location::parse(&args.from)?;
    let to = Location::parse(&args.to)?;
    let options = CopyOptions {
        parallel: args.parallel as usize,
        resume: super::resume(args.resume),
    };
    let started = Instant::now();
    let report = copy(&from, &to, &options, &Bars::new(quiet))
        .with_context(|| format!("copy of {from} to {to} failed"))?;
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "copied {} part(s), {} bytes in {secs:.1}s ({:.0} MB/s) to {to}{}; every part verified against the manifest",
            report.parts,
            report.bytes,
            report.bytes as f64 / 1e6 / secs.max(1e-9),
            if report.parts_kept > 0 {
                format!(
                    " ({} part(s) copied by an earlier run kept)",
                    report.parts_kept
                )
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}
