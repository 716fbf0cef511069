//! `vecport ls URL`

use crate::connectors;

use super::out;

/// Arguments of `ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database, e.g. chroma://localhost:8000.
    pub url: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, connect: &connectors::ConnectOptions) -> anyhow::Result<u8> {
    let source = connectors::open(&args.url, connect)?;
    let collections = source.list().await?;
    if args.json {
        for c in &collections {
            out(serde_json::to_string(c)?)?;
        }
        return Ok(0);
    }
    let width = collections
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    out(format!(
        "{:width$}  {:>9}  {:>9}  {:>12}",
        "NAME", "DIMENSION", "METRIC", "COUNT"
    ))?;
    let dash = "-".to_owned();
    for c in &collections {
        out(format!(
            "{:width$}  {:>9}  {:>9}  {:>12}",
            c.name,
            c.dimension.map_or(dash.clone(), |d| d.to_string()),
            c.metric.map_or(dash.clone(), |m| m.to_string()),
            c.count.map_or(dash.clone(), |n| n.to_string()),
        ))?;
    }
    Ok(0)
}
