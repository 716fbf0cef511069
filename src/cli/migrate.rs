//! `vecport migrate SOURCE_URL TARGET_URL`

use std::path::PathBuf;

use crate::storage::Location;
use std::time::Instant;

use anyhow::Context;

use crate::connectors::{self, ScanOptions};
use crate::pipeline::{self, ExportOptions, ImportOptions};
use crate::snapshot::WriteOptions;

use super::import::{FitArgs, IfExists, default_changes_for, default_changes_path, parse_rename};
use super::progress::Bars;

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source database, e.g. chroma://localhost:8000 (all collections) or chroma://localhost:8000/docs.
    pub source: String,
    /// The target database, e.g. qdrant://localhost:6333 or qdrant://localhost:6333/new-name.
    pub target: String,
    /// Keep the snapshot the migration goes through in DIR (new or empty; a
    /// directory or an object-storage location such as s3://BUCKET/PREFIX),
    /// to replay (`vecport import DIR TARGET`) or audit it. Without it, the
    /// snapshot goes into `.vecport-migrate-<hash>` in the current directory,
    /// removed once the migration succeeds.
    #[arg(long, value_name = "DIR")]
    pub via: Option<String>,
    /// Continue a migration that stopped (same URLs, and the same --via if
    /// one was given): the export after its last completed part, the import
    /// after the records it completed.
    #[arg(long)]
    pub resume: bool,
    /// Migrate only this collection (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Migrate collection FROM under the name TO (repeatable).
    #[arg(long = "rename", value_name = "FROM=TO", value_parser = parse_rename)]
    pub renames: Vec<(String, String)>,
    /// What to do when a target collection exists.
    #[arg(long, value_enum, default_value_t = IfExists::Refuse)]
    pub if_exists: IfExists,
    /// Records per read request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Read requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub read_concurrency: u32,
    /// Write requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub write_concurrency: u32,
    /// At most N records per write request (each target has its own limit,
    /// in records and bytes; this only lowers it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,
    /// Read the ids listed in FILE (one per line) instead of listing them
    /// (Pinecone pod indexes).
    #[arg(long, value_name = "FILE")]
    pub ids_from: Option<PathBuf>,
    #[command(flatten)]
    pub fit: FitArgs,
}

pub async fn run(
    args: Args,
    quiet: bool,
    connect: &connectors::ConnectOptions,
) -> anyhow::Result<u8> {
    let started = Instant::now();
    let kept = args.via.is_some();
    let done = migrated(args, connect, &Bars::new(quiet)).await?;
    if !quiet {
        super::export::summarize(&done.manifest, started, &done.via);
        super::import::summarize(&done.report, started);
        super::report_retries(connect);
        if !kept {
            eprintln!("vecport: the temporary snapshot was removed (keep one with --via DIR)");
        }
    }
    Ok(0)
}

/// What a migration did.
#[derive(Debug)]
pub struct Migrated {
    /// The manifest of the snapshot it went through.
    pub manifest: crate::snapshot::Manifest,
    /// What the import wrote.
    pub report: pipeline::ImportReport,
    /// Where the snapshot it went through is (removed unless --via named it).
    pub via: Location,
}

/// Runs a migration, telling `observer` of its progress.
pub(super) async fn migrated(
    args: Args,
    connect: &connectors::ConnectOptions,
    observer: &dyn pipeline::Observer,
) -> anyhow::Result<Migrated> {
    let source = connectors::open(&args.source, connect)?;
    let sink = connectors::open(&args.target, connect)?;
    // A target URL naming one collection takes exactly one: find out before
    // exporting anything.
    if sink.collection_in_url().is_some()
        && source.collection_in_url().is_none()
        && args.collections.len() != 1
    {
        let n = source
            .list()
            .await
            .with_context(|| format!("cannot list the collections of {}", source.endpoint()))?
            .len();
        if n != 1 {
            anyhow::bail!(crate::Error::Usage(format!(
                "the target URL names one collection but the source has {n}; pick one with --collection"
            )));
        }
    }
    let via = match &args.via {
        Some(dir) => Location::parse(dir)?,
        None => Location::Local(default_via(&args, source.as_ref(), sink.as_ref())),
    };
    via.require_writable("--via")?;
    if let (None, false, Location::Local(dir)) = (&args.via, args.resume, &via)
        && dir.exists()
    {
        anyhow::bail!(crate::Error::Usage(format!(
            "an earlier migration from {} to {} stopped and kept its progress in {}; continue it with --resume, or remove that directory to start over",
            source.endpoint(),
            sink.endpoint(),
            dir.display()
        )));
    }
    let default_changes = match &args.via {
        Some(_) => default_changes_for(&via),
        None => default_changes_path(std::path::Path::new("vecport-migrate")),
    };
    let export = ExportOptions {
        collections: args.collections.clone(),
        write: WriteOptions::default(),
        scan: ScanOptions {
            page_size: args.page_size as usize,
            concurrency: args.read_concurrency as usize,
            start: None,
            ids_from: args.ids_from.clone(),
        },
        embedding_model: None,
        resume: super::resume(args.resume),
    };
    let mut import = ImportOptions {
        renames: args.renames.clone(),
        existing: args.if_exists.into(),
        concurrency: args.write_concurrency as usize,
        resume: super::resume(args.resume),
        batch_size: args.batch_size.map(|n| n as usize),
        ..ImportOptions::default()
    };
    args.fit.apply(&mut import, default_changes);
    let migrated = pipeline::migrate(
        source.as_ref(),
        sink.as_ref(),
        &via,
        &export,
        &import,
        observer,
    )
    .await;
    let (manifest, report) = match migrated {
        Ok(done) => done,
        Err(e) => {
            // A temporary snapshot goes, unless it holds progress to resume from.
            if let (None, Location::Local(dir)) = (&args.via, &via)
                && !matches!(e, crate::Error::Stopped { .. })
            {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(anyhow::Error::new(e).context(format!(
                "migration from {} to {} failed",
                source.endpoint(),
                sink.endpoint()
            )));
        }
    };
    if let (None, Location::Local(dir)) = (&args.via, &via) {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the temporary snapshot {}", dir.display()))?;
    }
    Ok(Migrated {
        manifest,
        report,
        via,
    })
}

/// The snapshot directory of a migration without --via: in the current
/// directory, named after what is migrated where, so that --resume finds it.
fn default_via(
    args: &Args,
    source: &dyn connectors::Source,
    sink: &dyn connectors::Sink,
) -> PathBuf {
    let key = format!(
        "{}\n{}\n{:?}\n{:?}",
        source.endpoint(),
        sink.endpoint(),
        (source.collection_in_url(), &args.collections),
        (sink.collection_in_url(), &args.renames)
    );
    let hash = blake3::hash(key.as_bytes()).to_hex();
    PathBuf::from(format!(".vecport-migrate-{}", &hash[..16]))
}
