//! Snapshot throughput against the disk's floor.
//!
//! Benches are named `<area>/<op>/<size>`; `size` is `<records>_x_<dimension>`.
//! Throughput is always the vector bytes (`records × dimension × 4`), so the
//! MB/s of `snapshot/*` and `raw/*` compare directly:
//!
//! - `snapshot/write/…`  [`SnapshotWriter`] with default [`WriteOptions`], records
//!   fed in pages of 1000 as an export does, parts fsynced, manifest written.
//! - `snapshot/read/…`   [`Snapshot::open`] + [`Snapshot::blocks`] over every
//!   record (every row checked, vectors in one buffer per row group), from a
//!   cold page cache.
//! - `snapshot/verify/…` [`Snapshot::verify`] (BLAKE3 of every part, footers), cold.
//! - `raw/write/…`       the same vector bytes in one file with `std::fs` + `sync_all`.
//! - `raw/read/…`        that file read back in 4 MiB reads, cold.
//! - `*/read-warm/…`     the reads again with the file in the page cache, to
//!   tell CPU cost from disk cost.
//!
//! Records are generated, and pages cloned, outside the timed sections. "Cold"
//! means the files' pages were evicted before each timed iteration with
//! `posix_fadvise(POSIX_FADV_DONTNEED)` (any user) and, where permitted (root),
//! `sync; echo 3 > /proc/sys/vm/drop_caches`; set `VECPORT_BENCH_NO_DROP_CACHES=1`
//! to skip the global drop on a shared machine. On a virtual disk the host may
//! still cache what the guest dropped.
//!
//! Temporary files go under `VECPORT_BENCH_DIR` (default: the system temp
//! directory); the 100k benches need about 1 GiB there and ~1.5 GiB of memory.
//!
//! ```text
//! cargo bench --bench snapshot                # everything, a few minutes
//! cargo bench --bench snapshot -- 10k_x_384   # the quick one
//! ```

use std::cell::OnceCell;
use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
    measurement::WallTime,
};
use serde_json::json;
use tempfile::TempDir;
use vecport::model::{CollectionSpec, IdKind, Metadata, Metric, Record, RecordId, VectorField};
use vecport::snapshot::{Snapshot, SnapshotWriter, SourceInfo, WriteOptions};

/// Records per page handed to the writer, as `vecport export` receives them.
const PAGE: usize = 1000;
/// Rows per batch read back, as `vecport import` reads them.
const READ_BATCH: usize = 1024;

/// A generated data set: string ids, small flat metadata, random vectors, in pages.
struct Dataset {
    records: usize,
    dim: usize,
    pages: Vec<Vec<Record>>,
}

impl Dataset {
    fn generate(records: usize, dim: usize) -> Dataset {
        let mut rng = fastrand::Rng::with_seed(0x7665_6370_6f72_7400 ^ (records * dim) as u64);
        let pages = (0..records)
            .step_by(PAGE)
            .map(|start| {
                (start..(start + PAGE).min(records))
                    .map(|i| {
                        let values = (0..dim).map(|_| rng.f32() * 2.0 - 1.0).collect();
                        let mut r = Record::dense(RecordId::String(format!("doc-{i:08}")), values);
                        r.metadata = Some(metadata(i));
                        r
                    })
                    .collect()
            })
            .collect();
        Dataset {
            records,
            dim,
            pages,
        }
    }

    fn spec(&self) -> CollectionSpec {
        CollectionSpec {
            name: "bench".into(),
            id_kind: Some(IdKind::String),
            vectors: vec![VectorField::dense(
                Some(self.dim as u32),
                Some(Metric::Cosine),
            )],
            count_hint: Some(self.records as u64),
            ..CollectionSpec::default()
        }
    }

    /// The vectors as one little-endian buffer (what `raw/*` writes).
    fn raw_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.records * self.dim * 4);
        for r in self.pages.iter().flatten() {
            let v = r.vectors[0]
                .as_ref()
                .and_then(|v| v.as_dense())
                .expect("dense");
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }
}

/// Small flat metadata, the shape Chroma collections typically carry.
fn metadata(i: usize) -> Metadata {
    let m = json!({
        "source": format!("file-{:04}.md", i / 50),
        "chunk": i % 50,
        "score": (i % 1000) as f64 / 1000.0,
        "public": i.is_multiple_of(3),
    });
    match m {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

/// Where temporary snapshots and files go.
fn scratch() -> TempDir {
    let base = std::env::var_os("VECPORT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::Builder::new()
        .prefix("vecport-bench-")
        .tempdir_in(base)
        .expect("create a temporary directory")
}

/// Writes `data` as a complete snapshot in `root` (the timed part of `snapshot/write`).
fn write_snapshot(root: &Path, spec: &CollectionSpec, pages: Vec<Vec<Record>>) -> u64 {
    let mut snapshot =
        SnapshotWriter::create(root, WriteOptions::default()).expect("create snapshot");
    let mut collection = snapshot.collection(spec, None).expect("start collection");
    for page in pages {
        collection.write(page).expect("write records");
    }
    let written = collection.records();
    snapshot.add(collection.finish().expect("finish collection"));
    snapshot
        .finish(SourceInfo {
            kind: "bench".into(),
            server_version: None,
            endpoint: None,
            location: Default::default(),
        })
        .expect("write manifest");
    written
}

/// Writes `bytes` to `path` and syncs it (the timed part of `raw/write`).
fn write_raw(path: &Path, bytes: &[u8]) {
    let mut f = File::create(path).expect("create raw file");
    f.write_all(bytes).expect("write raw file");
    f.sync_all().expect("sync raw file");
}

/// Reads `path` in 4 MiB reads; returns the bytes read.
fn read_raw(path: &Path, buf: &mut [u8]) -> u64 {
    let mut f = File::open(path).expect("open raw file");
    let mut total = 0u64;
    loop {
        let n = f.read(buf).expect("read raw file");
        if n == 0 {
            return total;
        }
        black_box(&buf[..n]);
        total += n as u64;
    }
}

/// Opens the snapshot and decodes every record into blocks, as `vecport
/// import` and `vecport compare` read it; returns the count.
fn read_snapshot(root: &Path) -> usize {
    let snapshot = Snapshot::open(root).expect("open snapshot");
    let mut n = 0;
    for c in &snapshot.manifest().collections {
        for block in snapshot.blocks(c, READ_BATCH) {
            let block = block.expect("read records");
            n += block.len();
            black_box(block);
        }
    }
    n
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list directory").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn fadvise_dontneed(file: &File) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        // glibc and musl, LP64: off_t is 64-bit.
        fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    }
    const POSIX_FADV_DONTNEED: i32 = 4;
    // SAFETY: a valid open descriptor; the call only advises the kernel.
    let _ = unsafe { posix_fadvise(file.as_raw_fd(), 0, 0, POSIX_FADV_DONTNEED) };
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn fadvise_dontneed(_file: &File) {}

/// Evicts `files` from the page cache as far as this process may: per-file
/// `POSIX_FADV_DONTNEED` (the files are synced, so their pages are clean), then
/// `sync; echo 3 > /proc/sys/vm/drop_caches`, silently skipped when not permitted.
fn drop_cache(files: &[PathBuf]) {
    for p in files {
        if let Ok(f) = File::open(p) {
            let _ = f.sync_all();
            fadvise_dontneed(&f);
        }
    }
    if std::env::var_os("VECPORT_BENCH_NO_DROP_CACHES").is_none() {
        let _ = std::process::Command::new("sync").status();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/vm/drop_caches")
        {
            let _ = f.write_all(b"3\n");
        }
    }
}

/// Times `op` `iters` times, calling `before` untimed ahead of each run.
fn timed<B: FnMut(), O>(iters: u64, mut before: B, mut op: impl FnMut() -> O) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        before();
        let start = Instant::now();
        let out = op();
        total += start.elapsed();
        drop(black_box(out));
    }
    total
}

/// Settings for benches whose one iteration takes a second or more.
fn slow(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
}

/// Lazily built inputs of one size; nothing is generated for filtered-out benches.
struct Fixture {
    label: &'static str,
    records: usize,
    dim: usize,
    data: OnceCell<Dataset>,
    raw: OnceCell<Vec<u8>>,
    raw_file: OnceCell<(TempDir, PathBuf)>,
    snapshot: OnceCell<(TempDir, PathBuf)>,
}

impl Fixture {
    fn new(label: &'static str, records: usize, dim: usize) -> Fixture {
        Fixture {
            label,
            records,
            dim,
            data: OnceCell::new(),
            raw: OnceCell::new(),
            raw_file: OnceCell::new(),
            snapshot: OnceCell::new(),
        }
    }

    fn vector_bytes(&self) -> u64 {
        (self.records * self.dim * 4) as u64
    }

    fn data(&self) -> &Dataset {
        self.data
            .get_or_init(|| Dataset::generate(self.records, self.dim))
    }

    fn raw(&self) -> &[u8] {
        self.raw.get_or_init(|| self.data().raw_bytes())
    }

    fn raw_file(&self) -> &Path {
        &self
            .raw_file
            .get_or_init(|| {
                let dir = scratch();
                let path = dir.path().join("vectors.f32");
                write_raw(&path, self.raw());
                (dir, path)
            })
            .1
    }

    fn snapshot(&self) -> &Path {
        &self
            .snapshot
            .get_or_init(|| {
                let dir = scratch();
                let root = dir.path().join("snap");
                let d = self.data();
                write_snapshot(&root, &d.spec(), d.pages.clone());
                let report = Snapshot::open(&root).expect("open").verify();
                assert!(report.is_ok(), "{:?}", report.problems);
                (dir, root)
            })
            .1
    }
}

/// `snapshot/write/<size>`: a fresh directory per iteration, pages cloned
/// untimed; the directory is removed untimed.
fn bench_snapshot_write(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    g.bench_function(format!("write/{}", f.label), |b| {
        let d = f.data();
        let spec = d.spec();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let pages = d.pages.clone();
                let dir = scratch();
                let root = dir.path().join("snap");
                let start = Instant::now();
                let n = write_snapshot(&root, &spec, pages);
                total += start.elapsed();
                assert_eq!(n as usize, d.records);
            }
            total
        });
    });
}

fn bench_snapshot_reads(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    g.bench_function(format!("read/{}", f.label), |b| {
        let root = f.snapshot();
        let files = files_under(root);
        b.iter_custom(|iters| {
            timed(
                iters,
                || drop_cache(&files),
                || assert_eq!(read_snapshot(root), f.records),
            )
        });
    });
    g.bench_function(format!("read-warm/{}", f.label), |b| {
        let root = f.snapshot();
        assert_eq!(read_snapshot(root), f.records);
        b.iter_custom(|iters| timed(iters, || (), || assert_eq!(read_snapshot(root), f.records)));
    });
    g.bench_function(format!("verify/{}", f.label), |b| {
        let root = f.snapshot();
        let files = files_under(root);
        b.iter_custom(|iters| {
            timed(
                iters,
                || drop_cache(&files),
                || {
                    let report = Snapshot::open(root).expect("open").verify();
                    assert!(report.is_ok(), "{:?}", report.problems);
                    report
                },
            )
        });
    });
}

fn bench_raw(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture) {
    let bytes = f.vector_bytes();
    g.bench_function(format!("write/{}", f.label), |b| {
        let raw = f.raw();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch();
                let path = dir.path().join("vectors.f32");
                let start = Instant::now();
                write_raw(&path, raw);
                total += start.elapsed();
            }
            total
        });
    });
    let mut buf = vec![0u8; 4 << 20];
    g.bench_function(format!("read/{}", f.label), |b| {
        let path = f.raw_file();
        let files = [path.to_owned()];
        b.iter_custom(|iters| {
            timed(
                iters,
                || drop_cache(&files),
                || assert_eq!(read_raw(path, &mut buf), bytes),
            )
        });
    });
    g.bench_function(format!("read-warm/{}", f.label), |b| {
        let path = f.raw_file();
        read_raw(path, &mut buf);
        b.iter_custom(|iters| timed(iters, || (), || assert_eq!(read_raw(path, &mut buf), bytes)));
    });
}

fn benches(c: &mut Criterion) {
    // Quick: one write of a small collection, a few hundred ms per iteration.
    let small = Fixture::new("10k_x_384", 10_000, 384);
    {
        let mut g = c.benchmark_group("snapshot");
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Bytes(small.vector_bytes()));
        bench_snapshot_write(&mut g, &small);
        g.finish();
    }
    drop(small);

    // The export/import size: ~300 MB of vectors, a second or more per iteration.
    let big = Fixture::new("100k_x_768", 100_000, 768);
    {
        let mut g = c.benchmark_group("snapshot");
        slow(&mut g);
        g.throughput(Throughput::Bytes(big.vector_bytes()));
        bench_snapshot_write(&mut g, &big);
        bench_snapshot_reads(&mut g, &big);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("raw");
        slow(&mut g);
        g.throughput(Throughput::Bytes(big.vector_bytes()));
        bench_raw(&mut g, &big);
        g.finish();
    }
}

criterion_group!(snapshot_benches, benches);
criterion_main!(snapshot_benches);
