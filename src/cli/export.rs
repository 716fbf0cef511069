//! `vecport export SOURCE_URL SNAPSHOT`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::connectors::{self, ScanOptions};
use crate::model::EmbeddingModel;
use crate::pipeline::{self, ExportOptions};
use crate::snapshot::{VectorCompression, WriteOptions};
use crate::storage::Location;

use super::progress::Bars;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database, e.g. chroma://localhost:8000 (all collections) or chroma://localhost:8000/docs.
    pub source: String,
    /// Where the snapshot goes: a new (or empty) directory, or an empty prefix
    /// in object storage (s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX).
    pub snapshot: String,
    /// Export only this collection (repeatable).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Records per read request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Read requests in flight at once; where pages form a chain (Qdrant's
    /// scroll), how many pages may wait decoded ahead of the writer (at most 8).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Start a new part file after this many rows.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub part_rows: u64,
    /// Start a new part file after about this many bytes.
    #[arg(long, default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub part_bytes: u64,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1..))]
    pub row_group_rows: u32,
    /// Storage of vector columns: none (plain, fastest) or zstd (BYTE_STREAM_SPLIT + zstd, a few % smaller).
    #[arg(long, value_enum, default_value_t = VectorCompression::None)]
    pub vector_compression: VectorCompression,
    /// Write part files through the page cache. By default they are written
    /// with direct I/O where the filesystem takes it (Linux), which keeps a
    /// large export from evicting what the machine has cached.
    #[arg(long)]
    pub no_direct_io: bool,
    /// Record the embedding model that produced the vectors.
    #[arg(long, value_name = "NAME")]
    pub embedding_model: Option<String>,
    /// Export the ids listed in FILE (one per line) instead of listing them:
    /// for Pinecone pod indexes, which cannot list ids.
    #[arg(long, value_name = "FILE")]
    pub ids_from: Option<PathBuf>,
    /// Continue the unfinished export in SNAPSHOT after its last completed
    /// part (page size and concurrency may differ from the first run); start
    /// one when the location is new or empty.
    #[arg(long)]
    pub resume: bool,
    /// Output dimension of --embedding-model.
    #[arg(long, value_name = "N", requires = "embedding_model")]
    pub embedding_dimension: Option<u32>,
}

pub async fn run(
    args: Args,
    quiet: bool,
    connect: &connectors::ConnectOptions,
) -> anyhow::Result<u8> {
    let started = Instant::now();
    let dir = Location::parse(&args.snapshot)?;
    let manifest = exported(args, connect, &Bars::new(quiet)).await?;
    if !quiet {
        summarize(&manifest, started, &dir);
        super::report_retries(connect);
    }
    Ok(0)
}

/// Runs an export, telling `observer` of its progress; the manifest written.
pub(super) async fn exported(
    args: Args,
    connect: &connectors::ConnectOptions,
    observer: &dyn pipeline::Observer,
) -> anyhow::Result<crate::snapshot::Manifest> {
    let snapshot = Location::parse(&args.snapshot)?;
    let source = connectors::open(&args.source, connect)?;
    if args.ids_from.is_some() && !source.reads_ids_from() {
        anyhow::bail!(crate::Error::Usage(format!(
            "--ids-from is for sources that cannot list ids (pinecone pod indexes); {} lists them itself",
            source.name()
        )));
    }
    let options = ExportOptions {
        collections: args.collections,
        write: WriteOptions {
            part_max_rows: args.part_rows,
            part_max_bytes: args.part_bytes,
            row_group_rows: args.row_group_rows as usize,
            vector_compression: args.vector_compression,
            direct_io: !args.no_direct_io,
            ..WriteOptions::default()
        },
        scan: ScanOptions {
            page_size: args.page_size as usize,
            concurrency: args.concurrency as usize,
            start: None,
            ids_from: args.ids_from,
        },
        embedding_model: args.embedding_model.map(|name| EmbeddingModel {
            name,
            dimension: args.embedding_dimension,
        }),
        resume: super::resume(args.resume),
    };
    pipeline::export_to(source.as_ref(), &snapshot, &options, observer)
        .await
        .with_context(|| format!("export from {} failed", source.endpoint()))
}

/// Prints what an export did.
pub(super) fn summarize(manifest: &crate::snapshot::Manifest, started: Instant, dir: &Location) {
    let records: u64 = manifest.collections.iter().map(|c| c.record_count).sum();
    let secs = started.elapsed().as_secs_f64();
    for c in &manifest.collections {
        for note in &c.notes {
            eprintln!("vecport: note: collection `{}`: {note}", c.name);
        }
    }
    eprintln!(
        "exported {} collection(s), {records} records in {secs:.1}s ({:.0} records/s) to {}",
        manifest.collections.len(),
        records as f64 / secs.max(1e-9),
        dir
    );
}
