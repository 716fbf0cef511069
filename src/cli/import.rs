//! `vecport import SNAPSHOT_DIR TARGET_URL`

use std::path::PathBuf;

use crate::storage::Location;
use std::time::Instant;

use anyhow::Context;

use crate::connectors::{self, ExistingTarget};
use crate::mapping::{ChangeKind, MetadataPolicy, NamespacePolicy};
use crate::pipeline::{self, ImportOptions, ImportReport};

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

impl From<IfExists> for ExistingTarget {
    fn from(v: IfExists) -> ExistingTarget {
        match v {
            IfExists::Refuse => ExistingTarget::Refuse,
            IfExists::Append => ExistingTarget::Append,
            IfExists::Replace => ExistingTarget::Replace,
        }
    }
}

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot: a directory, or a location in object storage (s3://…, az://…, gs://…, https://…).
    pub snapshot: String,
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
    /// Continue the unfinished import of this snapshot into this target
    /// after the records it completed (concurrency may differ from the first
    /// run); start one when there is none.
    #[arg(long)]
    pub resume: bool,
    /// Keep the import's progress in DIR, a directory or an object-storage
    /// location [default: SNAPSHOT/.vecport-state; ./.vecport-state for a
    /// snapshot read over https://], e.g. when the snapshot is on read-only storage.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<String>,
    /// At most N records per write request (each target has its own limit,
    /// in records and bytes; this only lowers it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,
    #[command(flatten)]
    pub fit: FitArgs,
}

/// How records are made to fit the target; shared by `import` and `migrate`.
#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// What to do with metadata values the target cannot hold (nested
    /// objects, nulls, lists it lacks, integers it cannot store exactly).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = MetadataPolicy::Refuse)]
    pub metadata: MetadataPolicy,
    /// Leave out the records the target cannot take even after --metadata
    /// (all-zero vectors, ids too long, metadata too large, …), listing each
    /// in the change report, instead of refusing the import.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Leave out the vector field NAME (repeatable; "" is the unnamed
    /// field), e.g. sparse vectors for a target that has none. The import
    /// says how many records had values in it.
    #[arg(long = "drop-vector", value_name = "NAME")]
    pub drop_vectors: Vec<String>,
    /// What becomes of namespaces: `refuse` (a target without namespaces
    /// refuses records outside the default one), `into-key[=KEY]` (in a
    /// target without namespaces, each record's namespace is kept in
    /// metadata key KEY, by default __vecport_namespace, which an export
    /// restores it from; ids must be unique across namespaces), or
    /// `from-key=KEY` (each record's namespace is taken from metadata key KEY).
    #[arg(long, value_name = "POLICY", default_value = "refuse", value_parser = parse_namespaces)]
    pub namespaces: NamespacePolicy,
    /// Where to write the change report, one JSON object per change
    /// [default: beside the snapshot, SNAPSHOT.changes-TIME.jsonl; for
    /// migrate without --via, in the current directory]. Written only when
    /// something was changed.
    #[arg(long, value_name = "FILE")]
    pub changes: Option<PathBuf>,
}

impl FitArgs {
    /// Sets the fitting options of `options`, the change report at
    /// `default_changes` unless --changes names one.
    pub(super) fn apply(&self, options: &mut ImportOptions, default_changes: PathBuf) {
        options.metadata = self.metadata;
        options.skip_invalid = self.skip_invalid;
        options.drop_vectors = self.drop_vectors.clone();
        options.namespaces = self.namespaces.clone();
        options.changes = Some(self.changes.clone().unwrap_or(default_changes));
        if let Ok(dir) = std::env::current_dir() {
            options.work_dir = dir;
        }
    }
}

fn parse_namespaces(s: &str) -> Result<NamespacePolicy, String> {
    s.parse()
}

/// [`default_changes_path`] for a snapshot anywhere: beside a local one, in
/// the current directory for one in object storage (named after its last
/// path segment).
pub(super) fn default_changes_for(snapshot: &Location) -> PathBuf {
    match snapshot {
        Location::Local(dir) => default_changes_path(dir),
        Location::Bucket(b) => {
            let name = b
                .url()
                .rsplit('/')
                .find(|s| !s.is_empty() && !s.contains(':'))
                .unwrap_or("snapshot");
            default_changes_path(std::path::Path::new(name))
        }
    }
}

/// `dir.changes-20261126T091500Z.jsonl` beside the snapshot directory `dir`
/// (`…Z-2.jsonl`, `…Z-3.jsonl`, … when an import of the same second left one).
pub(super) fn default_changes_path(snapshot: &std::path::Path) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let dir = std::path::absolute(snapshot).unwrap_or_else(|_| snapshot.to_path_buf());
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".to_owned());
    let mut path = dir.with_file_name(format!("{name}.changes-{stamp}.jsonl"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.with_file_name(format!("{name}.changes-{stamp}-{n}.jsonl"));
    }
    path
}

pub(super) fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_owned(), to.to_owned()))
        }
        _ => Err(format!("`{s}` is not FROM=TO")),
    }
}

pub async fn run(
    args: Args,
    quiet: bool,
    connect: &connectors::ConnectOptions,
) -> anyhow::Result<u8> {
    let started = Instant::now();
    let report = imported(args, connect, &Bars::new(quiet)).await?;
    if !quiet {
        summarize(&report, started);
        super::report_retries(connect);
    }
    Ok(0)
}

/// Runs an import, telling `observer` of its progress; what it wrote.
pub(super) async fn imported(
    args: Args,
    connect: &connectors::ConnectOptions,
    observer: &dyn pipeline::Observer,
) -> anyhow::Result<ImportReport> {
    let snapshot = Location::parse(&args.snapshot)?;
    let state_dir = args.state_dir.as_deref().map(Location::parse).transpose()?;
    if let Some(d) = &state_dir {
        d.require_writable("--state-dir")?;
    }
    let sink = connectors::open(&args.target, connect)?;
    let mut options = ImportOptions {
        collections: args.collections,
        renames: args.renames,
        existing: args.if_exists.into(),
        concurrency: args.concurrency as usize,
        resume: super::resume(args.resume),
        state_dir,
        batch_size: args.batch_size.map(|n| n as usize),
        ..ImportOptions::default()
    };
    args.fit.apply(&mut options, default_changes_for(&snapshot));
    pipeline::import_from(&snapshot, sink.as_ref(), &options, observer)
        .await
        .with_context(|| format!("import of {snapshot} into {} failed", sink.endpoint()))
}

/// Prints what an import did.
pub(super) fn summarize(report: &ImportReport, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    for c in &report.collections {
        eprintln!(
            "imported `{}` → `{}`: {} records written, target counts {}",
            c.source, c.target, c.records, c.target_count
        );
        if !c.changes.is_empty() {
            let kinds: Vec<String> = c
                .changes
                .iter()
                .map(|(kind, n)| match (kind, n) {
                    (ChangeKind::Skipped, 1) => "1 record skipped".to_owned(),
                    (ChangeKind::Skipped, n) => format!("{n} records skipped"),
                    (ChangeKind::Renamed, 1) => "1 metadata key renamed".to_owned(),
                    (ChangeKind::Renamed, n) => format!("{n} metadata keys renamed"),
                    (ChangeKind::Id, 1) => "1 id stored in another form".to_owned(),
                    (ChangeKind::Id, n) => format!("{n} ids stored in another form"),
                    (ChangeKind::Namespace, 1) => {
                        "1 record's namespace moved to or from a metadata key".to_owned()
                    }
                    (ChangeKind::Namespace, n) => {
                        format!("{n} records' namespaces moved to or from a metadata key")
                    }
                    (kind, 1) => format!("1 metadata value {kind}"),
                    (kind, n) => format!("{n} metadata values {kind}"),
                })
                .collect();
            eprintln!("vecport: changed on the way: {}", kinds.join(", "));
        }
        for note in &c.notes {
            eprintln!("vecport: note: `{}`: {note}", c.target);
        }
    }
    if let Some(path) = &report.changes {
        eprintln!("vecport: every change is listed in {}", path.display());
    }
    let records: u64 = report.collections.iter().map(|c| c.records).sum();
    eprintln!(
        "imported {records} records in {secs:.1}s ({:.0} records/s)",
        records as f64 / secs.max(1e-9)
    );
}
