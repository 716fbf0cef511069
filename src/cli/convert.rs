//! `vecport convert FROM TO [--from FORMAT] [--to FORMAT]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::convert::{
    self, ColumnMapping, Format, MetadataSource, ReadOptions, output, pinecone_datasets,
    pinecone_import,
};
use crate::error::Error;
use crate::mapping::{MetadataPolicy, NamespacePolicy};
use crate::model::{EmbeddingModel, Metric};
use crate::pipeline::ImportOptions;
use crate::snapshot::{Snapshot, SourceInfo, WriteOptions};

use super::import::default_changes_path;
use super::progress::Bars;

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to read: a snapshot directory, a Parquet file or directory, a
    /// .jsonl or .npy file, a pinecone-datasets or VDF directory.
    pub from: PathBuf,
    /// What to write: a new (or empty) directory, or a .parquet file.
    pub to: PathBuf,
    /// The format of FROM [default: told by its layout].
    #[arg(long = "from", value_enum, value_name = "FORMAT")]
    pub from_format: Option<Format>,
    /// The format of TO [default: vecport, or parquet for a .parquet file,
    /// when FROM is not a snapshot; else it must be given].
    #[arg(long = "to", value_enum, value_name = "FORMAT")]
    pub to_format: Option<Format>,
    /// The column (JSON key) holding the ids [default: `id` if there is one,
    /// else the records are numbered from 0 in reading order].
    #[arg(long, value_name = "COL")]
    pub id_column: Option<String>,
    /// A column of vectors (lists of float16/32/64), and the vector field it
    /// becomes [default field: the unnamed one]; repeatable [default: the one
    /// column holding lists of floats].
    #[arg(long = "vector-column", value_name = "COL[=FIELD]", value_parser = col_field)]
    pub vector_columns: Vec<(String, String)>,
    /// A column of sparse vectors (a struct or object of `indices` and
    /// `values`), and its field [default field: `sparse`].
    #[arg(long, value_name = "COL[=FIELD]", value_parser = col_field)]
    pub sparse_column: Option<(String, String)>,
    /// The column holding the document text [default: `document` if there is one].
    #[arg(long, value_name = "COL")]
    pub document_column: Option<String>,
    /// The column holding the URI [default: `uri` if there is one].
    #[arg(long, value_name = "COL")]
    pub uri_column: Option<String>,
    /// These columns become metadata keys of the same names [default: a
    /// `metadata` column, plus every column not mapped to anything else].
    #[arg(
        long,
        value_name = "A,B,…",
        value_delimiter = ',',
        conflicts_with = "metadata_json"
    )]
    pub metadata_columns: Option<Vec<String>>,
    /// This column holds the metadata as a JSON object (or its text).
    #[arg(long, value_name = "COL")]
    pub metadata_json: Option<String>,
    /// The column holding the namespace (empty or null: the default one)
    /// [default: `namespace` if there is one].
    #[arg(long, value_name = "COL")]
    pub namespace_column: Option<String>,
    /// Leave this column out (repeatable).
    #[arg(long = "ignore-column", value_name = "COL")]
    pub ignore_columns: Vec<String>,
    /// The metric the vectors are searched with (cosine, dot, l2, manhattan, hamming).
    #[arg(long, value_parser = parse_metric)]
    pub metric: Option<Metric>,
    /// Reading: the collection's name [default: from the input]. Writing:
    /// the snapshot's collection to convert (repeatable where the format
    /// holds several).
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// npy: a JSON Lines file of the other fields, line i for row i.
    #[arg(long, value_name = "FILE")]
    pub rows: Option<PathBuf>,
    /// Record the embedding model that produced the vectors.
    #[arg(long, value_name = "NAME")]
    pub embedding_model: Option<String>,
    /// Records read at a time.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_rows: u32,
    /// Writing: what to do with metadata values the layout cannot hold.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = MetadataPolicy::Refuse)]
    pub metadata: MetadataPolicy,
    /// Writing: leave out the records the layout cannot take, listing each
    /// in the change report, instead of refusing the conversion.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Writing: what becomes of namespaces in a layout without them
    /// (pinecone-datasets): refuse, into-key[=KEY] or from-key=KEY.
    #[arg(long, value_name = "POLICY", default_value = "refuse", value_parser = parse_namespaces)]
    pub namespaces: NamespacePolicy,
    /// Where to write the change report [default: beside TO,
    /// TO.changes-TIME.jsonl]. Written only when something was changed.
    #[arg(long, value_name = "FILE")]
    pub changes: Option<PathBuf>,
}

fn col_field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("`{s}`: the column is empty")),
        Some((c, f)) => Ok((c.to_owned(), f.to_owned())),
        None if s.is_empty() => Err("the column is empty".into()),
        None => Ok((s.to_owned(), String::new())),
    }
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not a metric: cosine, dot, l2, manhattan or hamming"))
}

fn parse_namespaces(s: &str) -> Result<NamespacePolicy, String> {
    s.parse()
}

impl Args {
    fn read_options(&self) -> ReadOptions {
        let metadata = match (&self.metadata_columns, &self.metadata_json) {
            (_, Some(col)) => MetadataSource::Json(col.clone()),
            (Some(cols), None) => MetadataSource::Columns(cols.clone()),
            (None, None) => MetadataSource::Rest,
        };
        ReadOptions {
            mapping: ColumnMapping {
                id: self.id_column.clone(),
                vectors: self.vector_columns.clone(),
                sparse: self.sparse_column.clone().map(|(c, f)| {
                    let field = if f.is_empty() {
                        pinecone_datasets::SPARSE_FIELD.to_owned()
                    } else {
                        f
                    };
                    (c, field)
                }),
                document: self.document_column.clone(),
                uri: self.uri_column.clone(),
                metadata,
                namespace: self.namespace_column.clone(),
                ignore: self.ignore_columns.clone(),
            },
            metric: self.metric,
            collection: self.collections.first().cloned(),
            rows: self.rows.clone(),
            batch_rows: self.batch_rows as usize,
        }
    }
}

pub async fn run(args: Args, quiet: bool) -> anyhow::Result<u8> {
    let from = match args.from_format {
        Some(f) => f,
        None => Format::detect(&args.from).ok_or_else(|| {
            Error::Usage(format!(
                "cannot tell the format of {} from its layout; name it with --from (vecport, parquet, jsonl, npy, pinecone-datasets, vdf)",
                args.from.display()
            ))
        })?,
    };
    let to = match args.to_format {
        Some(f) => f,
        None if from != Format::Vecport => {
            if args.to.extension().is_some_and(|e| e == "parquet") {
                Format::Parquet
            } else {
                Format::Vecport
            }
        }
        None => {
            return Err(Error::Usage(format!(
                "{} is a snapshot: name the format to write with --to (parquet, pinecone-datasets, pinecone-import)",
                args.from.display()
            ))
            .into());
        }
    };
    if from == Format::Vecport && to == Format::Vecport {
        return Err(Error::Usage(
            "both sides are vecport snapshots; to copy a snapshot, copy its directory (vecport verify checks the copy)".into(),
        )
        .into());
    }
    output::check_output(&args.to)?;
    let started = Instant::now();
    let changes = args
        .changes
        .clone()
        .unwrap_or_else(|| default_changes_path(&args.to));
    let context = || {
        format!(
            "convert of {} ({}) into {} ({}) failed",
            args.from.display(),
            from.name(),
            args.to.display(),
            to.name()
        )
    };
    if from != Format::Vecport && to == Format::Vecport {
        read_into(&args, from, &args.to, &changes, quiet, started).with_context(context)?;
        return Ok(0);
    }
    if from == Format::Vecport {
        write_from(&args, &args.from, to, &changes, quiet, started)
            .await
            .with_context(context)?;
        return Ok(0);
    }
    // Foreign to foreign: through a snapshot beside the output, removed afterwards.
    let via = output::stage_for(&args.to).with_context(context)?;
    let snapshot = via.path().join("snapshot");
    read_into(&args, from, &snapshot, &changes, true, started).with_context(context)?;
    let mut write_args_changes = changes.clone();
    if write_args_changes.exists() {
        write_args_changes = default_changes_path(&args.to);
    }
    write_from(&args, &snapshot, to, &write_args_changes, quiet, started)
        .await
        .with_context(context)?;
    Ok(0)
}

/// FROM (a foreign format) → a snapshot at `out`.
fn read_into(
    args: &Args,
    from: Format,
    out: &Path,
    changes: &Path,
    quiet: bool,
    started: Instant,
) -> crate::Result<()> {
    let options = args.read_options();
    let readers = convert::open_input(from, &args.from, &options)?;
    let source = SourceInfo {
        kind: from.name().to_owned(),
        server_version: None,
        endpoint: Some(
            std::path::absolute(&args.from)
                .unwrap_or_else(|_| args.from.clone())
                .display()
                .to_string(),
        ),
        location: Default::default(),
    };
    let model = args.embedding_model.clone().map(|name| EmbeddingModel {
        name,
        dimension: None,
    });
    let converted = convert::to_snapshot(
        readers,
        out,
        source,
        model,
        WriteOptions::default(),
        &Bars::new(quiet),
    )?;
    let report =
        convert::write_lossy_report(changes, &out.display().to_string(), &converted.lossy)?;
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        for c in &converted.manifest.collections {
            eprintln!(
                "converted {} ({}) → `{}`: {} records in {} part(s)",
                args.from.display(),
                from.name(),
                c.name,
                c.record_count,
                c.parts.len()
            );
            for note in &c.notes {
                eprintln!("vecport: note: `{}`: {note}", c.name);
            }
        }
        if let Some(path) = report {
            eprintln!("vecport: every change is listed in {}", path.display());
        }
        let records: u64 = converted
            .manifest
            .collections
            .iter()
            .map(|c| c.record_count)
            .sum();
        eprintln!(
            "wrote snapshot {} with {records} records in {secs:.1}s ({:.0} records/s)",
            out.display(),
            records as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

/// A snapshot → TO in a foreign layout.
async fn write_from(
    args: &Args,
    snapshot: &Path,
    to: Format,
    changes: &Path,
    quiet: bool,
    started: Instant,
) -> crate::Result<()> {
    let opened = Snapshot::open(snapshot)?;
    let collections = &opened.manifest().collections;
    let single_file = to == Format::Parquet && args.to.extension().is_some_and(|e| e == "parquet");
    let one_only = matches!(to, Format::PineconeImport | Format::PineconeDatasets) || single_file;
    let chosen = if args.collections.is_empty() {
        collections.len()
    } else {
        args.collections.len()
    };
    if one_only && chosen != 1 {
        return Err(Error::Usage(format!(
            "{} holds {} collections and {} takes one; pick it with --collection ({})",
            snapshot.display(),
            chosen,
            if single_file {
                "a .parquet file"
            } else {
                to.name()
            },
            collections
                .iter()
                .map(|c| format!("`{}`", c.name))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let stage = output::stage_for(&args.to)?;
    let shown = args.to.display().to_string();
    let options = ImportOptions {
        collections: args.collections.clone(),
        metadata: args.metadata,
        skip_invalid: args.skip_invalid,
        namespaces: args.namespaces.clone(),
        changes: Some(changes.to_owned()),
        work_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        read_batch_rows: args.batch_rows as usize,
        ..ImportOptions::default()
    };
    let observer = Bars::new(quiet);
    let report = match to {
        Format::PineconeImport => {
            let sink = pinecone_import::PineconeImport::new(stage.path().to_owned(), shown)?;
            output::from_snapshot(snapshot, &sink, stage, &args.to, options, &observer).await?
        }
        Format::PineconeDatasets => {
            let sink = pinecone_datasets::DatasetWriter::new(stage.path().to_owned(), shown);
            output::from_snapshot(snapshot, &sink, stage, &args.to, options, &observer).await?
        }
        Format::Parquet if single_file => {
            let name = args
                .to
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sink = output::FlatParquet::new(stage.path().to_owned(), shown, Some(name.clone()));
            // The file itself is moved into place, not the directory.
            let inner = output::stage_for(&args.to)?;
            let report =
                output::from_snapshot(snapshot, &sink, stage, inner.path(), options, &observer)
                    .await?;
            let file = inner.path().join(&name);
            std::fs::rename(&file, &args.to).map_err(|e| Error::io(&args.to, e))?;
            report
        }
        Format::Parquet => {
            let sink = output::FlatParquet::new(stage.path().to_owned(), shown, None);
            output::from_snapshot(snapshot, &sink, stage, &args.to, options, &observer).await?
        }
        other => {
            return Err(Error::Usage(format!(
                "{} is not written by `vecport convert` (it writes snapshots, parquet, pinecone-datasets and pinecone-import)",
                other.name()
            )));
        }
    };
    if !quiet {
        summarize(&report, to, &args.to, started);
    }
    Ok(())
}

/// Prints what a conversion out of a snapshot did.
fn summarize(report: &crate::pipeline::ImportReport, to: Format, out: &Path, started: Instant) {
    for c in &report.collections {
        eprintln!(
            "converted `{}` into {} ({}): {} records written, {} counted in the files",
            c.source,
            out.display(),
            to.name(),
            c.records,
            c.target_count
        );
        if !c.changes.is_empty() {
            let kinds: Vec<String> = c
                .changes
                .iter()
                .map(|(kind, n)| format!("{n} × {kind}"))
                .collect();
            eprintln!("vecport: changed on the way: {}", kinds.join(", "));
        }
        for note in &c.notes {
            eprintln!("vecport: note: `{}`: {note}", c.source);
        }
    }
    if let Some(path) = &report.changes {
        eprintln!("vecport: every change is listed in {}", path.display());
    }
    let records: u64 = report.collections.iter().map(|c| c.records).sum();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {records} records in {secs:.1}s ({:.0} records/s)",
        records as f64 / secs.max(1e-9)
    );
}
