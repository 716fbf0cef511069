//! `vecport compare A B`

use anyhow::Context;

use crate::compare::{self, CollectionComparison, CompareOptions, Side};

use super::{EXIT_PROBLEMS, out};

/// Arguments of `compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A database URL or a snapshot directory.
    pub a: String,
    /// A database URL or a snapshot directory.
    pub b: String,
    /// Compare collection A_NAME of A with B_NAME of B (repeatable; `NAME`
    /// alone for the same name on both sides). Default: the only collection
    /// of each side, or every collection with the same name.
    #[arg(long = "collection", value_name = "A_NAME[=B_NAME]")]
    pub collections: Vec<String>,
    /// Compare about N records, chosen by id hash (the same on both sides),
    /// instead of all; counts still cover every record.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Largest difference allowed between vector components (0: bit-exact).
    /// Vectors a database normalises or re-rounds on write get a tolerance
    /// of their own, which the result states.
    #[arg(long, default_value_t = 0.0)]
    pub tolerance: f32,
    /// Units in the last place by which metadata floats may differ.
    #[arg(long, default_value_t = 0)]
    pub float_ulps: u64,
    /// Ids listed per kind of difference (0: all of them).
    #[arg(long, default_value_t = 20)]
    pub max_ids: usize,
    /// Search parity: take N query vectors from A's records and compare the
    /// top-k of each side's own nearest-neighbour search with each other and
    /// with exact neighbours computed from A's records.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub queries: usize,
    /// Neighbours per query for --queries.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub k: u32,
    /// Fail (exit 1) when recall@k of B against A (or against exact
    /// neighbours when A is a snapshot) is below this.
    #[arg(long, value_name = "R", requires = "queries")]
    pub min_recall: Option<f64>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, connect: &crate::connectors::ConnectOptions) -> anyhow::Result<u8> {
    let json = args.json;
    let (a, b, result) = compared(args, connect).await?;
    if json {
        out(serde_json::to_string_pretty(&result)?)?;
    } else {
        out(format!("A: {}\nB: {}", a.describe(), b.describe()))?;
        for name in &result.only_in_a {
            out(format!("collection `{name}`: only in A"))?;
        }
        for name in &result.only_in_b {
            out(format!("collection `{name}`: only in B"))?;
        }
        for c in &result.collections {
            human(c)?;
        }
        out(if result.equal {
            "result: equal"
        } else {
            "result: DIFFERENT"
        })?;
    }
    Ok(if result.equal { 0 } else { EXIT_PROBLEMS })
}

/// Runs a comparison: the two sides and the result.
pub(super) async fn compared(
    args: Args,
    connect: &crate::connectors::ConnectOptions,
) -> anyhow::Result<(Side, Side, compare::Comparison)> {
    let a = Side::open(&args.a, connect).with_context(|| format!("cannot open A ({})", args.a))?;
    let b = Side::open(&args.b, connect).with_context(|| format!("cannot open B ({})", args.b))?;
    let options = CompareOptions {
        pairs: args
            .collections
            .iter()
            .map(|c| match c.split_once('=') {
                Some((x, y)) => (x.to_owned(), y.to_owned()),
                None => (c.clone(), c.clone()),
            })
            .collect(),
        sample: args.sample,
        tolerance: args.tolerance,
        float_ulps: args.float_ulps,
        max_ids: args.max_ids,
        work_dir: std::env::current_dir().context("no current directory")?,
        queries: args.queries,
        k: args.k as usize,
        min_recall: args.min_recall,
        ..CompareOptions::default()
    };
    let result = compare::compare(&a, &b, &options)
        .await
        .with_context(|| format!("comparing {} with {} failed", a.describe(), b.describe()))?;
    Ok((a, b, result))
}

fn human(c: &CollectionComparison) -> anyhow::Result<()> {
    out(format!("`{}` vs `{}`", c.a, c.b))?;
    type Counts = std::collections::BTreeMap<Option<String>, u64>;
    let total = |m: &Counts| m.values().sum::<u64>();
    out(format!(
        "  records: A {}, B {}",
        total(&c.counts.a),
        total(&c.counts.b)
    ))?;
    if c.counts
        .a
        .keys()
        .chain(c.counts.b.keys())
        .any(Option::is_some)
    {
        let names: std::collections::BTreeSet<&Option<String>> =
            c.counts.a.keys().chain(c.counts.b.keys()).collect();
        for ns in names {
            let get = |m: &Counts| m.get(ns).copied().unwrap_or(0);
            let label = match ns {
                None => "(default)".to_owned(),
                Some(name) => format!("{name:?}"),
            };
            out(format!(
                "    namespace {label}: A {}, B {}",
                get(&c.counts.a),
                get(&c.counts.b)
            ))?;
        }
    }
    out(format!(
        "  compared {}: {} missing in B, {} extra in B, {} differing",
        c.compared, c.missing.count, c.extra.count, c.differing.count
    ))?;
    for t in &c.tolerances {
        out(format!("  tolerance: {t}"))?;
    }
    for setting in &c.settings {
        out(format!("  setting differs: {setting}"))?;
    }
    if let Some(p) = &c.search {
        let r = |x: Option<f64>| {
            x.map_or("n/a (a snapshot has no search)".into(), |x| {
                format!("{x:.4}")
            })
        };
        out(format!(
            "  search parity on vector {:?} ({} queries, k={}, exact by {}): recall@{} B vs A {}, A vs exact {}, B vs exact {}",
            p.field,
            p.queries,
            p.k,
            p.metric.map_or("?".into(), |m| m.to_string()),
            p.k,
            r(p.b_vs_a),
            r(p.a_vs_exact),
            r(p.b_vs_exact)
        ))?;
    }
    for f in &c.fields_only_in_a {
        out(format!("  vector field {f} only in A"))?;
    }
    for f in &c.fields_only_in_b {
        out(format!("  vector field {f} only in B"))?;
    }
    let list = |label: &str, ids: &[String], count: u64| -> anyhow::Result<()> {
        if count > 0 {
            let more = if (ids.len() as u64) < count {
                ", …"
            } else {
                ""
            };
            out(format!("  {label}: {}{more}", ids.join(", ")))?;
        }
        Ok(())
    };
    list("missing in B", &c.missing.ids, c.missing.count)?;
    list("extra in B", &c.extra.ids, c.extra.count)?;
    for (part, n) in &c.differing.by_part {
        out(format!("  {n} records differ in {part}"))?;
    }
    for r in &c.differing.records {
        out(format!("  differs {}: {}", r.id, r.what.join("; ")))?;
    }
    Ok(())
}
