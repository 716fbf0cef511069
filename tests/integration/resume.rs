//! Crash and resume: `vecport export`, `import` and `migrate` are killed
//! with SIGKILL at random moments and resumed with `--resume` (and killed
//! again while resuming), against real Chroma and the Qdrant emulator.
//! Every time, the snapshot passes `verify` and holds exactly what an
//! uninterrupted export holds, and the target holds exactly the source's
//! records: `vecport compare` finds none missing, extra or different.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vecport::connectors::{self, Sink};
use vecport::model::{Metric, Record};
use vecport::snapshot::Snapshot;

use crate::conformance::write_snapshot;
use crate::emulators::qdrant::{self, QdrantOptions};
use crate::support::cli::vecport_process;
use crate::support::data::{self, FLAT};
use crate::support::pipeline::seed_from;
use crate::support::{server_url, unique_name};

/// Records per collection: enough for many parts, pages and batches.
const RECORDS: usize = 3_000;
const DIM: usize = 16;

/// `vecport ARGS` with its output captured.
fn command(args: &[&str]) -> Command {
    let mut c = vecport_process();
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("run vecport")
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "vecport {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Kills runs with SIGKILL at random moments, and counts the kills.
pub(crate) struct Crashes {
    pub(crate) rng: fastrand::Rng,
    pub(crate) kills: usize,
    /// Sets up each run's command (its environment) before it starts.
    pub(crate) setup: Box<dyn Fn(&mut Command)>,
}

impl Crashes {
    /// Runs `first`, then `resumed` (the same command with `--resume`),
    /// killing each at a random moment within `span` (an uninterrupted
    /// run's duration) until `kills` kills landed or a run finished; then
    /// lets `resumed` run to the end, in `cwd`. Calls `killed` after each
    /// kill; returns the stderr of the run that finished.
    pub(crate) fn run(
        &mut self,
        first: &[&str],
        resumed: &[&str],
        span: Duration,
        kills: usize,
        cwd: &Path,
        killed: &mut dyn FnMut(),
    ) -> String {
        let mut args = first;
        let finished = |args: &[&str], out: Output| {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "vecport {args:?} failed: {stderr}");
            stderr
        };
        for _ in 0..kills {
            let delay = span.mul_f64(0.02 + 0.6 * self.rng.f64());
            let mut cmd = command(args);
            (self.setup)(&mut cmd);
            let mut child: Child = cmd.current_dir(cwd).spawn().expect("spawn vecport");
            let started = Instant::now();
            loop {
                if child.try_wait().unwrap().is_some() {
                    return finished(args, child.wait_with_output().unwrap());
                }
                if started.elapsed() >= delay {
                    child.kill().expect("SIGKILL");
                    child.wait().unwrap();
                    self.kills += 1;
                    killed();
                    break;
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            args = resumed;
        }
        let mut cmd = command(resumed);
        (self.setup)(&mut cmd);
        finished(resumed, cmd.current_dir(cwd).output().unwrap())
    }
}

/// The parts an export's progress file lists: (collection directory/part, blake3).
fn parts_in_progress(dir: &Path) -> Vec<(String, String)> {
    let Ok(bytes) = std::fs::read(dir.join(".vecport-state/export.json")) else {
        return Vec::new();
    };
    let state: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    state["done"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(state["current"].get("collection"))
        .flat_map(|c| {
            let directory = c["directory"].as_str().unwrap().to_owned();
            c["parts"].as_array().unwrap().iter().map(move |p| {
                (
                    format!("{directory}/{}", p["path"].as_str().unwrap()),
                    p["blake3"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect()
}

/// The rows an import's progress file says are done.
fn rows_in_progress(snapshot: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(snapshot.join(".vecport-state")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("import-"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .flat_map(|s| s["collections"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["rows_done"].as_u64())
        .max()
        .unwrap_or(0)
}

/// "N records written" from an import's summary.
fn records_written(stderr: &str) -> u64 {
    let at = stderr
        .find(" records written")
        .unwrap_or_else(|| panic!("no import summary in: {stderr}"));
    stderr[..at]
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before \"records written\" in: {stderr}"))
}

fn timed(args: &[&str]) -> Duration {
    let started = Instant::now();
    ok(args);
    started.elapsed()
}

/// The records of a snapshot's only collection, sorted by id.
fn records_of(dir: &Path) -> Vec<Record> {
    let s = Snapshot::open(dir).unwrap();
    let c = &s.manifest().collections[0];
    let mut records: Vec<Record> = s.records(c, 1000).flat_map(Result::unwrap).collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

/// `verify` passes and the content equals the uninterrupted export's.
fn assert_same_snapshot(dir: &Path, reference: &Path, what: &str) {
    let out = run(&["verify", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{what}: verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (got, want) = (records_of(dir), records_of(reference));
    assert_eq!(got.len(), want.len(), "{what}: record count");
    if let Some(d) = data::first_difference(&want, &got) {
        panic!("{what}: {d}");
    }
    let manifest = |d: &Path| Snapshot::open(d).unwrap().manifest().collections[0].clone();
    let (a, b) = (manifest(dir), manifest(reference));
    assert_eq!(a.record_count, b.record_count, "{what}");
    assert_eq!(a.namespaces, b.namespaces, "{what}");
    assert_eq!(a.metadata_schema, b.metadata_schema, "{what}");
    assert_eq!(a.id_kind, b.id_kind, "{what}");
    assert!(
        !dir.join(".vecport-state").exists(),
        "{what}: the progress file outlives the export"
    );
}

/// `vecport compare A B` finds no difference.
fn assert_same_content(a: &str, b: &str, what: &str) {
    let out = run(&["compare", a, b]);
    assert!(
        out.status.success(),
        "{what}: compare {a} {b}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sigkilled_runs_resume_to_exactly_the_uninterrupted_result() {
    let chroma =
        server_url("CHROMA_URL").map(|u| format!("chroma://{}", crate::support::chroma::host(&u)));
    let emulator = qdrant::start_background(QdrantOptions::default()).unwrap();
    let qdrant = format!("qdrant://{}", emulator.addr());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_snapshot(
        &base,
        &data::spec("base", DIM as u32, Metric::L2),
        data::records(RECORDS, DIM, 97, FLAT),
    );
    let seed = std::env::var("VECPORT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash points from seed {seed} (VECPORT_CRASH_SEED to repeat)");
    let mut crashes = Crashes {
        rng: fastrand::Rng::with_seed(seed),
        kills: 0,
        setup: Box::new(|_| {}),
    };

    let mut databases = vec![("qdrant", qdrant)];
    databases.extend(chroma.map(|c| ("chroma", c)));
    // Seed a source collection in each database.
    let sources: Vec<(&str, String)> = runtime.block_on(async {
        let mut out = Vec::new();
        for (name, url) in &databases {
            let collection = unique_name("crash");
            let target = format!("{url}/{collection}");
            let sink = connectors::open(&target, &Default::default()).unwrap();
            seed_from(&base, sink.as_ref() as &dyn Sink, name).await;
            out.push((*name, target));
        }
        out
    });

    let here = tmp.path();
    for (name, source) in &sources {
        // Export: killed, then resumed with another page size.
        let reference = tmp.path().join(format!("{name}-reference"));
        let export = |dir: &Path, page: &str| -> Vec<String> {
            [
                "export",
                source,
                s(dir),
                "--page-size",
                page,
                "--part-rows",
                "200",
                "--row-group-rows",
                "50",
            ]
            .map(str::to_owned)
            .to_vec()
        };
        let span = timed(&strs(&export(&reference, "100")));
        for round in 0..2 {
            let dir = tmp.path().join(format!("{name}-export-{round}"));
            let mut resumed = export(&dir, "70");
            resumed.push("--resume".into());
            let mut kept = Vec::new();
            crashes.run(
                &strs(&export(&dir, "100")),
                &strs(&resumed),
                span,
                3,
                here,
                &mut || kept.extend(parts_in_progress(&dir)),
            );
            let what = format!("export from {name}, round {round}");
            assert_same_snapshot(&dir, &reference, &what);
            // A resumed export continues after the parts it completed.
            let manifest = Snapshot::open(&dir).unwrap().manifest().clone();
            for (path, hash) in &kept {
                let part = manifest.collections[0]
                    .parts
                    .iter()
                    .find(|p| format!("{}/{}", manifest.collections[0].directory, p.path) == *path)
                    .unwrap_or_else(|| panic!("{what}: part {path} was dropped on resume"));
                assert_eq!(
                    &part.blake3, hash,
                    "{what}: part {path} was rewritten on resume"
                );
            }
        }

        // Import of the uninterrupted export into every database.
        for (target_name, target_url) in &databases {
            let target = format!("{target_url}/{}", unique_name("crash"));
            let first = ["import", s(&reference), &target, "--concurrency", "3"];
            let resumed = [
                "import",
                s(&reference),
                &target,
                "--concurrency",
                "2",
                "--resume",
            ];
            let probe = format!("{target_url}/{}", unique_name("probe"));
            let span = timed(&["import", s(&reference), &probe]);
            let mut done = 0;
            let stderr = crashes.run(&first, &resumed, span, 4, here, &mut || {
                done = rows_in_progress(&reference)
            });
            let what = format!("import from {name} into {target_name}");
            // A resumed import continues after the rows it completed.
            let written = records_written(&stderr);
            assert!(
                written <= RECORDS as u64 - done,
                "{what}: {written} records written after {done} were done"
            );
            assert_same_content(s(&reference), &target, &what);
            assert!(
                !reference.join(".vecport-state").exists(),
                "the import's progress file outlives it"
            );
        }
    }

    // Migrate from the first database into the last (Qdrant into itself
    // without Chroma), through a kept snapshot.
    let (from, to) = (&sources[0], &databases[databases.len() - 1]);
    let via = tmp.path().join("via");
    let span = timed(&[
        "migrate",
        &from.1,
        &format!("{}/{}", to.1, unique_name("probe")),
        "--via",
        s(&tmp.path().join("probe-via")),
    ]);
    let target = format!("{}/{}", to.1, unique_name("crash"));
    let first = [
        "migrate",
        &from.1,
        &target,
        "--via",
        s(&via),
        "--page-size",
        "100",
    ];
    let resumed = ["migrate", &from.1, &target, "--via", s(&via), "--resume"];
    crashes.run(&first, &resumed, span, 5, here, &mut || {});
    assert_same_content(&from.1, &target, &format!("migrate {} → {}", from.0, to.0));
    ok(&["verify", s(&via)]);

    // Without --via: --resume finds the temporary snapshot again.
    let target = format!("{}/{}", to.1, unique_name("crash"));
    let cwd = tempfile::tempdir().unwrap();
    let first = ["migrate", &from.1, &target, "--page-size", "100"];
    let resumed = ["migrate", &from.1, &target, "--resume"];
    crashes.run(&first, &resumed, span, 4, cwd.path(), &mut || {});
    assert_same_content(&from.1, &target, "migrate without --via");
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "the temporary snapshot is removed once the migration succeeds"
    );

    eprintln!("{} runs were killed", crashes.kills);
    if sources.len() > 1 {
        assert!(
            crashes.kills >= 20,
            "only {} kills landed (seed {seed})",
            crashes.kills
        );
    }
    drop(emulator);
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A server that keeps failing: with no retries, each run stops at the
/// first fault and says how to go on; the user reruns with `--resume` until
/// it completes. The result equals a run against a healthy server.
#[test]
fn runs_stopped_by_a_failing_server_resume_to_the_same_result() {
    use crate::emulators::Faults;
    let emulator = qdrant::start_background(QdrantOptions::default()).unwrap();
    let url = format!("qdrant://{}", emulator.addr());
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_snapshot(
        &base,
        &data::spec("base", DIM as u32, Metric::L2),
        data::records(RECORDS, DIM, 5, FLAT),
    );
    let source = format!("{url}/source");
    ok(&["import", s(&base), &source]);
    let reference = tmp.path().join("reference");
    let export = |dir: &Path| {
        [
            "export",
            &source,
            s(dir),
            "--page-size",
            "50",
            "--part-rows",
            "100",
            "--retries",
            "0",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    ok(&strs(&export(&reference)));

    // Export: one scroll in five fails.
    let dir = tmp.path().join("flaky-export");
    let faults = |seed| Faults {
        unavailable: 0.2,
        seed: Some(seed),
        ..Faults::none()
    };
    emulator
        .faults()
        .set(faults(7).under("/collections/source/points/scroll"))
        .unwrap();
    let (mut stopped, mut lost) = (0, 0);
    let mut args = export(&dir);
    for attempt in 0.. {
        assert!(attempt < 200, "the export never completed");
        let out = run(&strs(&args));
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        if stderr.contains("--resume") {
            // It kept the parts it completed, and says so.
            assert!(stderr.contains(".vecport-state"), "{stderr}");
            assert!(dir.join(".vecport-state/export.json").exists());
            stopped += 1;
        } else {
            // It stopped before completing a part: nothing is left behind.
            assert!(!dir.exists(), "{stderr}");
            lost += 1;
        }
        args = export(&dir);
        args.push("--resume".into());
    }
    eprintln!("{stopped} runs stopped after completing parts, {lost} before completing one");
    assert!(
        stopped > 0,
        "no run stopped after completing a part ({lost} before)"
    );
    assert_same_snapshot(&dir, &reference, "export from a failing server");

    // Import: one upsert in five fails.
    emulator
        .faults()
        .set(faults(11).under("/collections/target/points"))
        .unwrap();
    let target = format!("{url}/target");
    let first = [
        "import",
        s(&reference),
        &target,
        "--retries",
        "0",
        "--concurrency",
        "2",
    ];
    let out = run(&first);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    // Without --resume, the unfinished import is not silently started over.
    let again = run(&first);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stopped before it finished") && stderr.contains("--resume"),
        "{stderr}"
    );
    let mut resumed = first.to_vec();
    resumed.push("--resume");
    for attempt in 0.. {
        assert!(attempt < 200, "the import never completed");
        let out = run(&resumed);
        if out.status.success() {
            break;
        }
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    emulator.faults().clear();
    assert_same_content(s(&reference), &target, "import into a failing server");
    assert!(!reference.join(".vecport-state").exists());
}

/// Reruns `export` with `--resume` until it completes while one request in
/// five fails, and checks the result against an export from the healthy
/// server. Returns how many runs stopped after completing parts.
fn export_through_faults(
    source: &str,
    tmp: &Path,
    faults: &dyn Fn(Option<crate::emulators::Faults>),
) -> usize {
    let export = |dir: &Path| {
        [
            "export",
            source,
            s(dir),
            "--page-size",
            "40",
            "--part-rows",
            "100",
            "--retries",
            "0",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let reference = tmp.join("reference");
    ok(&strs(&export(&reference)));
    let dir = tmp.join("flaky");
    faults(Some(crate::emulators::Faults {
        unavailable: 0.2,
        seed: Some(3),
        ..crate::emulators::Faults::none()
    }));
    let mut stopped = 0;
    let mut args = export(&dir);
    for attempt in 0.. {
        assert!(attempt < 300, "the export from {source} never completed");
        let out = run(&strs(&args));
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        stopped += usize::from(stderr.contains("--resume"));
        args = export(&dir);
        args.push("--resume".into());
    }
    faults(None);
    assert_same_snapshot(&dir, &reference, &format!("export from {source}"));
    stopped
}

/// Cursors that cross namespaces (Pinecone) and tenants (Weaviate) resume
/// where they stopped: a stop at a namespace's or tenant's last page goes on
/// with the next one.
#[test]
fn exports_resume_across_namespaces_and_tenants() {
    use crate::emulators::{pinecone, weaviate};
    let tmp = tempfile::tempdir().unwrap();
    let namespaced = |flavor| -> Vec<Record> {
        let mut records = data::records(1_200, DIM, 13, flavor);
        for (i, r) in records.iter_mut().enumerate() {
            r.namespace = Some(["alpha", "beta", "gamma"][i % 3].to_owned());
        }
        records
    };

    let p = pinecone::start_background(pinecone::PineconeOptions::default()).unwrap();
    p.set_stats_lag_reads(0);
    assert_export_resumes(
        tmp.path(),
        "Pinecone",
        namespaced(data::PINECONE),
        &format!("pinecone+http://{}/ns-source", p.addr()),
        &|f| match f {
            Some(f) => p
                .faults()
                .set(f.under("/__index/ns-source/vectors"))
                .unwrap(),
            None => p.faults().clear(),
        },
    );

    // A document index (ASCII ids): its list pages are `documents/list` calls.
    let mut ascii = namespaced(data::PINECONE);
    for (i, r) in ascii.iter_mut().enumerate() {
        r.id = vecport::model::RecordId::String(format!("doc-{i:05}"));
    }
    assert_export_resumes(
        tmp.path(),
        "Pinecone-documents",
        ascii,
        &format!("pinecone+http://{}/ns-documents?kind=document", p.addr()),
        &|f| match f {
            Some(f) => p
                .faults()
                .set(f.under("/__index/ns-documents/namespaces/"))
                .unwrap(),
            None => p.faults().clear(),
        },
    );

    let w = weaviate::start_background(weaviate::WeaviateOptions::default()).unwrap();
    assert_export_resumes(
        tmp.path(),
        "Weaviate",
        namespaced(data::WEAVIATE),
        &format!("weaviate://{}/Tenanted", w.addr()),
        &|f| match f {
            Some(f) => w.faults().set(f.under("/v1/objects")).unwrap(),
            None => w.faults().clear(),
        },
    );
}

/// Seeds `source` of `database` with `records` through a snapshot in `tmp`,
/// then runs [`export_through_faults`] in a directory of its own there: some
/// run must stop after completing a part.
fn assert_export_resumes(
    tmp: &Path,
    database: &str,
    records: Vec<Record>,
    source: &str,
    faults: &dyn Fn(Option<crate::emulators::Faults>),
) {
    let name = database.to_lowercase();
    let base = tmp.join(format!("{name}-base"));
    write_snapshot(&base, &data::spec("base", DIM as u32, Metric::L2), records);
    ok(&["import", s(&base), source]);
    let dir = tmp.join(&name);
    std::fs::create_dir(&dir).unwrap();
    let stopped = export_through_faults(source, &dir, faults);
    assert!(
        stopped > 0,
        "no export from {database} stopped after completing a part"
    );
}
