//! Where snapshots live: a local directory, or a prefix in object storage —
//! S3 and S3-compatible servers, Azure Blob Storage, Google Cloud Storage,
//! and plain HTTP(S) servers to read from — reached through the
//! `object_store` crate.
//!
//! A [`Location`] is parsed from what the user typed. Object storage is
//! configured from the environment only, with the variables each provider's
//! own tools read ([`config`]); its secrets join those [`crate::redact`]
//! scrubs from every message. [`Bucket`] does the I/O the snapshot reader
//! and writer need on a runtime of its own, so that the synchronous encoding
//! and decoding threads can call it.

mod bucket;
pub mod config;

use std::fmt;
use std::path::{Path, PathBuf};

pub use bucket::{Bucket, Upload, UploadFailure};
pub use config::{Provider, secret_env};

use crate::error::{Error, Result};

/// Where a snapshot is, or is to be written.
#[derive(Debug, Clone)]
pub enum Location {
    /// A directory on a local (or mounted) file system.
    Local(PathBuf),
    /// A prefix in object storage.
    Bucket(Bucket),
}

impl Location {
    /// Parses a location: a path, `file://…`, `s3://BUCKET/PREFIX` (also
    /// `s3a://`), `az://CONTAINER/PREFIX` (also `abfs://`, `abfss://`,
    /// `azure://`, `adl://`), `gs://BUCKET/PREFIX`, or `http(s)://…` (read
    /// only). Credentials and settings come from the environment, never from
    /// the text: a location holding a password or a query is refused.
    pub fn parse(text: &str) -> Result<Location> {
        if !text.contains("://") {
            return Ok(Location::Local(PathBuf::from(text)));
        }
        let url = url::Url::parse(text).map_err(|e| {
            Error::Usage(format!(
                "`{}` is not a valid location URL ({e}); give a directory, or s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX, https://…",
                crate::redact::scrub(text)
            ))
        })?;
        if url.scheme() == "file" {
            return url.to_file_path().map(Location::Local).map_err(|()| {
                Error::Usage(format!(
                    "`{text}` is not a local path; write file:///absolute/path or just the path"
                ))
            });
        }
        Bucket::open(&url).map(Location::Bucket)
    }

    /// The local directory, when the location is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Bucket(_) => None,
        }
    }

    /// Where the file `rel` (a `/`-separated path inside the location) is,
    /// for messages: a path or a URL.
    pub fn file(&self, rel: &str) -> PathBuf {
        match self {
            Location::Local(p) => rel
                .split('/')
                .filter(|c| !c.is_empty())
                .fold(p.clone(), |p, c| p.join(c)),
            Location::Bucket(b) => b.file(rel),
        }
    }

    /// The location `rel` inside this one (a snapshot's state directory, say).
    pub fn child(&self, rel: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(rel)),
            Location::Bucket(b) => Location::Bucket(b.child(rel)),
        }
    }

    /// Whether snapshots can be written here (not over plain HTTP).
    pub fn writable(&self) -> bool {
        match self {
            Location::Local(_) => true,
            Location::Bucket(b) => b.provider() != Provider::Http,
        }
    }

    /// Refuses a location that cannot be written, naming what asked for it.
    pub fn require_writable(&self, what: &str) -> Result<()> {
        if self.writable() {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "{self} is read-only (an HTTP server); {what} needs a directory or an s3://, az:// or gs:// location"
        )))
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::Local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::Local(p.to_owned())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Bucket(b) => f.write_str(b.url()),
        }
    }
}

/// Whether `text` is a URL naming a snapshot location rather than a path
/// or a database: its scheme is one of object storage's, `http(s)` or `file`.
pub fn is_location_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        matches!(
            scheme.to_ascii_lowercase().as_str(),
            "s3" | "s3a"
                | "az"
                | "adl"
                | "azure"
                | "abfs"
                | "abfss"
                | "gs"
                | "http"
                | "https"
                | "file"
        )
    })
}

/// Parses a location for clap.
pub fn parse_arg(text: &str) -> std::result::Result<Location, String> {
    Location::parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_urls_are_local() {
        for (text, path) in [
            ("./snap", "./snap"),
            ("/tmp/snap", "/tmp/snap"),
            ("file:///tmp/snap", "/tmp/snap"),
            ("relative/dir", "relative/dir"),
        ] {
            match Location::parse(text).unwrap() {
                Location::Local(p) => assert_eq!(p, PathBuf::from(path), "{text}"),
                other => panic!("{text} parsed as {other}"),
            }
        }
    }

    #[test]
    fn a_local_file_name_is_joined_by_components() {
        let l = Location::Local(PathBuf::from("/snap"));
        assert_eq!(
            l.file("collections/a/part-000000.parquet"),
            PathBuf::from("/snap/collections/a/part-000000.parquet")
        );
        assert!(l.writable());
    }

    #[test]
    fn unknown_schemes_and_credentials_in_urls_are_refused() {
        let e = Location::parse("ftp://host/dir").unwrap_err().to_string();
        assert!(e.contains("ftp"), "{e}");
        let e = Location::parse("s3://AKIAKEY:wJalrSecretKey@bucket/prefix")
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(!e.contains("wJalrSecretKey"), "{e}");
        let e = Location::parse("s3://bucket/prefix?region=eu-west-1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("environment"), "{e}");
    }
}

/// Snapshots written to and read from object storage, over object_store's
/// in-memory store: the same bytes as on disk, verified, read back, copied.
#[cfg(test)]
mod snapshot_tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::model::{CollectionSpec, IdKind, Record, RecordId, VectorField};
    use crate::pipeline::copy::{CopyOptions, copy};
    use crate::pipeline::{Quiet, Resume};
    use crate::snapshot::{Snapshot, SnapshotWriter, SourceInfo, WriteOptions};

    fn records() -> Vec<Record> {
        (0..3_000)
            .map(|i| {
                let mut r = Record::dense(
                    RecordId::String(format!("r{i}")),
                    (0..16).map(|j| (i * 16 + j) as f32 * 0.25).collect(),
                );
                r.metadata = Some(
                    serde_json::json!({"i": i, "even": i % 2 == 0})
                        .as_object()
                        .unwrap()
                        .clone(),
                );
                r
            })
            .collect()
    }

    fn write(location: &Location) -> crate::error::Result<()> {
        let spec = CollectionSpec {
            name: "docs".into(),
            id_kind: Some(IdKind::String),
            vectors: vec![VectorField::dense(Some(16), None)],
            ..CollectionSpec::default()
        };
        let options = WriteOptions {
            part_max_rows: 1_000,
            row_group_rows: 400,
            direct_io: false,
            ..WriteOptions::default()
        };
        let mut w = SnapshotWriter::create_at(location, options)?;
        let mut c = w.collection(&spec, None)?;
        c.write(records())?;
        w.add(c.finish()?);
        w.finish_at(
            SourceInfo {
                kind: "test".into(),
                server_version: None,
                endpoint: None,
                location: Default::default(),
            },
            "2026-12-08T00:00:00Z".into(),
        )?;
        Ok(())
    }

    fn memory(prefix: &str) -> (Arc<InMemory>, Location) {
        let store = Arc::new(InMemory::new());
        let b = Bucket::over(store.clone(), prefix, &format!("s3://bucket/{prefix}"));
        (store, Location::Bucket(b))
    }

    fn local_files(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn bucket_files(l: &Location) -> Vec<(String, Vec<u8>)> {
        let Location::Bucket(b) = l else { panic!() };
        b.list("")
            .unwrap()
            .into_iter()
            .map(|(n, _)| {
                let bytes = b.read(&n, u64::MAX).unwrap().unwrap().to_vec();
                (n, bytes)
            })
            .collect()
    }

    #[test]
    fn a_snapshot_in_a_bucket_is_the_snapshot_on_disk_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let local = Location::Local(dir.path().join("snap"));
        write(&local).unwrap();
        let (_, bucket) = memory("backups/snap");
        write(&bucket).unwrap();
        let on_disk = local_files(&dir.path().join("snap"));
        assert_eq!(on_disk.len(), 5, "manifest, checksum, three parts");
        assert_eq!(bucket_files(&bucket), on_disk);

        let s = Snapshot::open_at(&bucket).unwrap();
        let report = s.verify();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!((report.files, report.rows), (3, 3_000));
        let deep = s.verify_deep(&s.manifest().collections.iter().collect::<Vec<_>>());
        assert!(deep.is_ok(), "{:?}", deep.problems);
        let c = &s.manifest().collections[0];
        let read: Vec<Record> = s.records(c, 500).flat_map(Result::unwrap).collect();
        assert_eq!(read, records());
        let checked: usize = s.blocks_checked(c, 700).map(|b| b.unwrap().len()).sum();
        assert_eq!(checked, 3_000);
    }

    #[test]
    fn an_existing_snapshot_in_a_bucket_is_never_replaced() {
        let (_, bucket) = memory("snap");
        write(&bucket).unwrap();
        let before = bucket_files(&bucket);
        let e = write(&bucket).unwrap_err().to_string();
        assert!(
            e.contains("already exists") && e.contains("manifest.json"),
            "{e}"
        );
        let after = bucket_files(&bucket);
        let manifest = |files: &[(String, Vec<u8>)]| {
            files
                .iter()
                .filter(|(n, _)| n.starts_with("manifest"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(manifest(&after), manifest(&before));
    }

    #[test]
    fn a_flipped_byte_in_a_bucket_is_named_by_verify_and_stops_reading() {
        let (store, bucket) = memory("snap");
        write(&bucket).unwrap();
        let Location::Bucket(b) = &bucket else {
            panic!()
        };
        let name = "collections/docs/part-000001.parquet";
        let mut bytes = b.read(name, u64::MAX).unwrap().unwrap().to_vec();
        bytes[100] ^= 1;
        b.write(name, bytes).unwrap();
        let s = Snapshot::open_at(&bucket).unwrap();
        let report = s.verify();
        assert_eq!(report.problems.len(), 1);
        let text = report.problems[0].to_string();
        assert!(
            text.contains("s3://bucket/snap/collections/docs/part-000001.parquet")
                && text.contains("checksum mismatch"),
            "{text}"
        );
        let c = &s.manifest().collections[0];
        let failed = s.blocks_checked(c, 1_000).find_map(Result::err);
        assert!(failed.is_some(), "a changed part stops the checked stream");
        drop(store);
    }

    #[test]
    fn copies_between_disk_and_buckets_are_verified_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let src = Location::Local(dir.path().join("snap"));
        write(&src).unwrap();
        let (_, a) = memory("a/snap");
        let (_, b) = memory("b/snap");
        copy(&src, &a, &CopyOptions::default(), &Quiet).unwrap();
        copy(&a, &b, &CopyOptions::default(), &Quiet).unwrap();
        let back = Location::Local(dir.path().join("back"));
        copy(&b, &back, &CopyOptions::default(), &Quiet).unwrap();
        let original = local_files(&dir.path().join("snap"));
        assert_eq!(bucket_files(&a), original);
        assert_eq!(bucket_files(&b), original);
        assert_eq!(local_files(&dir.path().join("back")), original);

        // Into a location that holds something: refused, nothing touched.
        let e = copy(&src, &a, &CopyOptions::default(), &Quiet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty"), "{e}");

        // A damaged source part: the copy stops before it appears.
        let Location::Bucket(bb) = &b else { panic!() };
        let name = "collections/docs/part-000002.parquet";
        let mut bytes = bb.read(name, u64::MAX).unwrap().unwrap().to_vec();
        bytes[10] ^= 0x40;
        bb.write(name, bytes).unwrap();
        let (_, c) = memory("c/snap");
        let options = CopyOptions {
            parallel: 1,
            resume: Resume::No,
        };
        let e = copy(&b, &c, &options, &Quiet).unwrap_err();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        let names: Vec<String> = bucket_files(&c).into_iter().map(|(n, _)| n).collect();
        assert!(
            !names.iter().any(|n| n == name || n == "manifest.json"),
            "{names:?}"
        );
        // Repaired, the copy resumes and keeps what it had.
        let Location::Bucket(ab) = &a else { panic!() };
        bb.write(name, ab.read(name, u64::MAX).unwrap().unwrap().to_vec())
            .unwrap();
        let resumed = CopyOptions {
            parallel: 2,
            resume: Resume::Required,
        };
        let report = copy(&b, &c, &resumed, &Quiet).unwrap();
        assert_eq!(report.parts + report.parts_kept, 3);
        assert_eq!(bucket_files(&c), original);
    }
}
