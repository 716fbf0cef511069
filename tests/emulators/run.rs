//! Runs an emulator in the foreground until Ctrl-C:
//!
//! ```text
//! cargo run --example emulator -- qdrant --port 6333 [--api-key KEY]
//!     [--max-request-size BYTES] [--faults '{"rate_limit":0.1}'] [--exact-floats] [--log]
//! cargo run --example emulator -- pinecone --port 5080 [--api-key KEY]
//!     [--max-request-size BYTES] [--stats-lag-reads N] [--faults '{…}'] [--log]
//! cargo run --example emulator -- weaviate --port 8080 [--api-key KEY]
//!     [--max-request-size BYTES] [--no-auto-schema] [--faults '{…}'] [--log]
//! ```
//!
//! Default ports: qdrant 6333, pinecone 5080, weaviate 8080. The Weaviate
//! emulator serves REST under `/v1` and GraphQL at `/v1/graphql` (no gRPC:
//! use weaviate-client 3.x); with `--api-key` it wants
//! `Authorization: Bearer KEY`. The Pinecone emulator serves
//! the control plane at the root and each index's data plane at the `host`
//! its `IndexModel` names (`http://127.0.0.1:PORT/__index/<name>`).
//!
//! Faults can also be switched while it runs: `POST /__emulator/faults`.

#[path = "mod.rs"]
mod emulators;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Qdrant,
    Pinecone,
    Weaviate,
}

#[derive(Debug, Parser)]
#[command(about = "Run a vector-database emulator in the foreground")]
struct Args {
    /// Which server to emulate.
    kind: Kind,
    /// Port on 127.0.0.1 (0 picks a free one; default 6333 for qdrant,
    /// 5080 for pinecone, 8080 for weaviate).
    #[arg(long)]
    port: Option<u16>,
    /// Require this API key (Weaviate: as `Authorization: Bearer KEY`).
    #[arg(long)]
    api_key: Option<String>,
    /// Request body limit in bytes (Qdrant's default: 32 MiB; Pinecone's: 2 MB;
    /// Weaviate has none, the emulator stops at 256 MiB).
    #[arg(long)]
    max_request_size: Option<usize>,
    /// Initial faults, as the JSON accepted by `POST /__emulator/faults`.
    #[arg(long)]
    faults: Option<String>,
    /// Read JSON numbers exactly (Qdrant itself may move 17-digit floats by
    /// one ulp; see `QdrantOptions::exact_floats`).
    #[arg(long)]
    exact_floats: bool,
    /// Pinecone: how many `describe_index_stats` calls after a write still
    /// show the counts from before it (0: no lag).
    #[arg(long)]
    stats_lag_reads: Option<u32>,
    /// Weaviate: turn auto-schema off (`AUTOSCHEMA_ENABLED=false`).
    #[arg(long)]
    no_auto_schema: bool,
    /// Log every request to stderr.
    #[arg(long)]
    log: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.log {
        emulators::set_logging(true);
    }
    let faults = match args.faults.as_deref().map(serde_json::from_str) {
        None => emulators::Faults::default(),
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("emulator: --faults: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let started = match args.kind {
        Kind::Qdrant => {
            let mut options = emulators::qdrant::QdrantOptions {
                port: args.port.unwrap_or(6333),
                api_key: args.api_key,
                faults,
                exact_floats: args.exact_floats,
                ..Default::default()
            };
            if let Some(n) = args.max_request_size {
                options.max_request_size = n;
            }
            emulators::qdrant::start(options).await.map(|e| {
                eprintln!(
                    "emulator: Qdrant {} listening on {}",
                    emulators::qdrant::VERSION,
                    e.base_url()
                );
                Box::new(e) as Box<dyn std::any::Any>
            })
        }
        Kind::Pinecone => {
            let mut options = emulators::pinecone::PineconeOptions {
                port: args.port.unwrap_or(5080),
                api_key: args.api_key,
                faults,
                ..Default::default()
            };
            if let Some(n) = args.max_request_size {
                options.max_request_size = n;
            }
            if let Some(n) = args.stats_lag_reads {
                options.stats_lag_reads = n;
            }
            emulators::pinecone::start(options).await.map(|e| {
                eprintln!(
                    "emulator: Pinecone (API {}) listening on {}",
                    emulators::pinecone::API_VERSION,
                    e.base_url()
                );
                Box::new(e) as Box<dyn std::any::Any>
            })
        }
        Kind::Weaviate => {
            let mut options = emulators::weaviate::WeaviateOptions {
                port: args.port.unwrap_or(8080),
                api_key: args.api_key,
                faults,
                auto_schema: !args.no_auto_schema,
                ..Default::default()
            };
            if let Some(n) = args.max_request_size {
                options.max_request_size = n;
            }
            emulators::weaviate::start(options).await.map(|e| {
                eprintln!(
                    "emulator: Weaviate {} listening on {}",
                    emulators::weaviate::VERSION,
                    e.base_url()
                );
                Box::new(e) as Box<dyn std::any::Any>
            })
        }
    };
    let emulator = match started {
        Ok(e) => e,
        Err(e) => {
            eprintln!("emulator: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = tokio::signal::ctrl_c().await;
    drop(emulator);
    std::process::ExitCode::SUCCESS
}
