//! The `vecport` command line: clap definitions, one file per command. The
//! CLI is the only layer that knows about terminals, progress bars and exit
//! codes.

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::connectors::ConnectOptions;
use crate::error::Category;

mod compare;
mod convert;
mod copy;
mod export;
mod import;
mod inspect;
mod ls;
mod migrate;
mod progress;
mod verify;

pub use migrate::Migrated;

/// Portable, checksummed Parquet snapshots of vector databases.
#[derive(Debug, Parser)]
#[command(name = "vecport", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars and no log output but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Retries of a failed request (rate limit, server error, timeout,
    /// dropped connection) before giving up; 0 retries nothing. Only requests
    /// that are safe to repeat (reads, upserts) are retried.
    #[arg(long, global = true, value_name = "N", default_value_t = 8)]
    pub retries: u32,
    /// Longest wait before the first retry, in seconds; each further retry
    /// waits up to twice as long as the one before, with jitter.
    #[arg(long, global = true, value_name = "SECS", default_value = "0.4", value_parser = parse_secs)]
    pub retry_wait: Duration,
    /// Longest wait between two tries, in seconds, and the longest
    /// `Retry-After` honoured.
    #[arg(long, global = true, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub retry_max_wait: Duration,
    /// A request not answered in full after this many seconds (its whole
    /// body included, however slowly it arrives) fails, and is retried.
    #[arg(long, global = true, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub timeout: Duration,
    /// The longest one request may take over all its tries, waits included,
    /// in seconds: a server answering each try just within --timeout cannot
    /// hold a run for --timeout × (--retries + 1).
    #[arg(long, global = true, value_name = "SECS", default_value = "900", value_parser = parse_secs)]
    pub total_timeout: Duration,
    /// The longest answer read from a database, in MiB; a longer one is an
    /// error (a server sending without end cannot exhaust memory).
    #[arg(long, global = true, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_response_mib: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export collections of a database into a new snapshot directory.
    Export(export::Args),
    /// Import a snapshot into a database, creating the target collections.
    Import(import::Args),
    /// Move collections from one database to another through a snapshot,
    /// with every guarantee of export and import.
    Migrate(migrate::Args),
    /// Compare two collections (databases or snapshots) record by record;
    /// exit 0 when equal, 1 when anything differs.
    Compare(compare::Args),
    /// Recompute every checksum and row count of a snapshot; exit 0 only when all match.
    Verify(verify::Args),
    /// Show what a snapshot holds.
    Inspect(inspect::Args),
    /// List the collections of a database with dimension, metric and count.
    Ls(ls::Args),
    /// Copy a snapshot between locations (disk, S3, Azure Blob, GCS),
    /// verifying every byte against its manifest.
    Copy(copy::Args),
    /// Convert between snapshots and the dataset formats users already have
    /// (Parquet, JSON Lines, NumPy, pinecone-datasets, Pinecone bulk import, VDF).
    Convert(convert::Args),
}

/// Exit code when a command found problems (verify: damaged snapshot).
pub const EXIT_PROBLEMS: u8 = 1;

/// Exit code of an error category.
pub fn exit_code(category: Category) -> u8 {
    match category {
        Category::Usage => 2,
        Category::Snapshot => 3,
        Category::Connection => 4,
        Category::Auth => 5,
        Category::NotFound => 6,
        Category::Data => 7,
        Category::Io => 8,
        Category::Busy => 9,
        Category::Internal => 70,
    }
}

/// The command line `args` (the program name first), with the databases
/// and their URLs (from the connectors' registry) below `--help`.
fn parse(args: impl IntoIterator<Item = OsString>) -> Cli {
    let command = Cli::command().after_help(crate::connectors::help_text());
    let matches = command.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Seconds, possibly fractional, as a duration.
fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a number of seconds between 0 and 86400"))
}

/// Runs the CLI with the process's arguments and returns its exit code.
pub fn main() -> u8 {
    main_from(std::env::args_os())
}

/// Runs the CLI with the command line `args` (the program name first) and
/// returns the exit code: the `vecport` command of the Python package.
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> u8 {
    let cli = parse(args);
    know_credentials();
    init_logging(cli.verbose, cli.quiet);
    let connect = connect_options(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vecport: error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let quiet = cli.quiet;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Export(a) => export::run(a, quiet, &connect).await,
            Command::Import(a) => import::run(a, quiet, &connect).await,
            Command::Migrate(a) => migrate::run(a, quiet, &connect).await,
            Command::Compare(a) => compare::run(a, &connect).await,
            Command::Verify(a) => verify::run(a),
            Command::Copy(a) => copy::run(a, quiet),
            Command::Inspect(a) => inspect::run(a),
            Command::Ls(a) => ls::run(a, &connect).await,
            Command::Convert(a) => convert::run(a, quiet).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return 0;
            }
            let code = err
                .chain()
                .find_map(|e| e.downcast_ref::<crate::Error>())
                .map_or(1, |e| exit_code(e.category()));
            eprintln!(
                "vecport: error: {}",
                crate::redact::scrub(&format!("{err:#}"))
            );
            code
        }
    }
}

/// Reads the credential variables first, so that no message can show them,
/// whatever fails first (a URL, say).
fn know_credentials() {
    let storage = crate::storage::secret_env().iter().copied();
    for var in crate::connectors::credential_env().chain(storage) {
        let _ = crate::redact::Secret::from_env(var);
    }
}

/// The connection settings of the global options.
fn connect_options(cli: &Cli) -> ConnectOptions {
    ConnectOptions {
        retry: crate::connectors::http::RetryPolicy {
            max_retries: cli.retries,
            base: cli.retry_wait,
            max: cli.retry_max_wait,
            timeout: cli.timeout.max(Duration::from_millis(1)),
            total: cli.total_timeout.max(Duration::from_millis(1)),
        },
        max_response_bytes: cli.max_response_mib << 20,
        ..ConnectOptions::default()
    }
}

/// What a command run by [`run_for_program`] produced.
#[derive(Debug)]
pub enum Outcome {
    /// `export`: the manifest written.
    Exported(crate::snapshot::Manifest),
    /// `import`: what was written.
    Imported(crate::pipeline::ImportReport),
    /// `migrate`: the snapshot's manifest and what was written.
    Migrated(Migrated),
    /// `compare`: the result, as `--json` prints it.
    Compared(crate::compare::Comparison),
}

/// Runs `vecport ARGS…` for a program rather than a terminal (the Python
/// package): `export`, `import`, `migrate` or `compare`, with the options,
/// defaults and checks of the command line, progress told to `observer`,
/// nothing printed, and what the command produced returned. An option the
/// command line refuses is an [`Error::Usage`](crate::Error::Usage).
pub fn run_for_program(
    args: &[String],
    observer: &dyn crate::pipeline::Observer,
) -> anyhow::Result<Outcome> {
    let cli =
        Cli::try_parse_from(std::iter::once("vecport").chain(args.iter().map(String::as_str)))
            .map_err(|e| crate::Error::Usage(e.render().to_string().trim_end().to_owned()))?;
    know_credentials();
    let connect = connect_options(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Internal {
            what: "starting the async runtime".into(),
            cause: e.to_string(),
        })?;
    runtime.block_on(async move {
        match cli.command {
            Command::Export(a) => export::exported(a, &connect, observer)
                .await
                .map(Outcome::Exported),
            Command::Import(a) => import::imported(a, &connect, observer)
                .await
                .map(Outcome::Imported),
            Command::Migrate(a) => migrate::migrated(a, &connect, observer)
                .await
                .map(Outcome::Migrated),
            Command::Compare(a) => compare::compared(a, &connect)
                .await
                .map(|(_, _, result)| Outcome::Compared(result)),
            _ => Err(crate::Error::Usage(
                "only export, import, migrate and compare run for a program".into(),
            )
            .into()),
        }
    })
}

/// The long options of `command` (`export`, `import`, …) and the global
/// ones, without `--help`, `--version`, `--verbose` and `--quiet`: what a
/// program may pass to [`run_for_program`].
pub fn long_options(command: &str) -> Vec<String> {
    let cli = Cli::command();
    let globals = cli.get_arguments();
    let own = cli
        .find_subcommand(command)
        .into_iter()
        .flat_map(|c| c.get_arguments());
    let mut names: Vec<String> = globals
        .chain(own)
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version" | "verbose" | "quiet"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VECPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("vecport={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| ScrubbedStderr)
        .with_target(false)
        .try_init();
}

/// Standard error, with every secret scrubbed from what is written: each log
/// event arrives in one write.
struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr()
            .lock()
            .write_all(crate::redact::scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// What `--resume` asks of the pipeline: continue an unfinished run if there
/// is one; without it, start afresh.
fn resume(asked: bool) -> crate::pipeline::Resume {
    if asked {
        crate::pipeline::Resume::IfStarted
    } else {
        crate::pipeline::Resume::No
    }
}

/// Says how many requests the connectors opened with `connect` retried so
/// far, if any.
pub(crate) fn report_retries(connect: &ConnectOptions) {
    let n = connect.retried.get();
    if n > 0 {
        eprintln!(
            "vecport: {n} request(s) were retried (rate limits, server errors, dropped connections)"
        );
    }
}

/// Writes a line to stdout, reporting a closed pipe as an error the caller
/// turns into exit 0.
pub(crate) fn out(line: impl AsRef<str>) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", crate::redact::scrub(line.as_ref()))?;
    Ok(())
}

/// Makes glibc's malloc serve every allocation of 1 MiB or more (request
/// bodies, row group buffers) with its own mapping, returned to the system
/// when freed. By default the threshold rises to the largest block freed so
/// far, after which such buffers are carved from the heaps of whichever
/// threads freed them and stay resident: peak RSS then creeps up with the
/// length of an export or import instead of staying at what is in flight.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_buffers() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: a plain libc call that only changes malloc's tuning (glibc
    // takes its own locks); callers make it first thing.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers() {}
