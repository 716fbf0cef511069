//! `vecport inspect SNAPSHOT`

use crate::snapshot::Snapshot;
use crate::snapshot::manifest::FieldStats;

use super::out;

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot: a directory, or a location in object storage (s3://…, az://…, gs://…, https://…).
    pub snapshot: String,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let location = crate::storage::Location::parse(&args.snapshot)?;
    let snapshot = Snapshot::open_at(&location)?;
    let m = snapshot.manifest();
    if args.json {
        out(serde_json::to_string_pretty(m)?)?;
        return Ok(0);
    }
    out(format!("snapshot   {location}"))?;
    out(format!("format     {} {}", m.format, m.format_version))?;
    out(format!(
        "producer   {} {}",
        m.producer.name, m.producer.version
    ))?;
    out(format!("created    {}", m.created_at))?;
    let mut src = m.source.kind.clone();
    if let Some(v) = &m.source.server_version {
        src.push_str(&format!(" (server {v})"));
    }
    if let Some(e) = &m.source.endpoint {
        src.push_str(&format!(" at {e}"));
    }
    for (k, v) in &m.source.location {
        src.push_str(&format!(
            " {k}={}",
            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
        ));
    }
    out(format!("source     {src}"))?;
    for c in &m.collections {
        let bytes: u64 = c.parts.iter().map(|p| p.bytes).sum();
        out("")?;
        out(format!("collection {}", c.name))?;
        out(format!(
            "  records    {} in {} part(s), {} bytes",
            c.record_count,
            c.parts.len(),
            bytes
        ))?;
        if c.namespaces.iter().any(|n| n.name.is_some()) {
            for n in &c.namespaces {
                out(format!(
                    "  namespace  {}: {}",
                    n.name.as_deref().unwrap_or("(default)"),
                    n.records
                ))?;
            }
        }
        // The manifest's own word (`uint_or_uuid`), not the Rust name.
        let ids = serde_json::to_value(c.id_kind)?;
        out(format!("  ids        {}", ids.as_str().unwrap_or_default()))?;
        for v in &c.vectors {
            let f = &v.field;
            let mut line = format!(
                "  vector     {} ({:?}, dimension {}, metric {}, stored {:?})",
                if f.name.is_empty() {
                    "(unnamed)"
                } else {
                    &f.name
                },
                f.kind,
                f.dimension.map_or("-".into(), |d| d.to_string()),
                f.metric.map_or("-".into(), |m| m.to_string()),
                f.stored_values,
            )
            .to_lowercase();
            if let Some(ix) = &f.index {
                line.push_str(&format!("\n  index      {}", ix.kind));
                for (k, val) in [
                    ("m", ix.m),
                    ("ef_construction", ix.ef_construction),
                    ("ef_search", ix.ef_search),
                    ("lists", ix.lists),
                ] {
                    if let Some(val) = val {
                        line.push_str(&format!(" {k}={val}"));
                    }
                }
                for (k, val) in &ix.extra {
                    line.push_str(&format!(" {k}={val}"));
                }
            }
            out(line)?;
        }
        out(format!(
            "  documents  {}",
            if c.has_documents { "yes" } else { "no" }
        ))?;
        if c.has_uris {
            out("  uris       yes")?;
        }
        if let Some(model) = &c.embedding_model {
            out(format!(
                "  model      {}{}",
                model.name,
                model.dimension.map_or(String::new(), |d| format!(" ({d})"))
            ))?;
        }
        let schema = &c.metadata_schema;
        out(format!(
            "  metadata   {} record(s) with metadata, {} key(s)",
            schema.records_with_metadata,
            schema.fields.len()
        ))?;
        for (key, stats) in &schema.fields {
            out(format!(
                "    {key}: {}",
                describe(stats, schema.records_with_metadata)
            ))?;
        }
        for note in &c.notes {
            out(format!("  note       {note}"))?;
        }
    }
    Ok(0)
}

fn describe(stats: &FieldStats, records: u64) -> String {
    let types: Vec<String> = stats
        .types
        .iter()
        .map(|(t, n)| format!("{t}×{n}"))
        .collect();
    format!(
        "{}{}",
        types.join(" "),
        if stats.nullable(records) {
            " (nullable)"
        } else {
            ""
        }
    )
}
