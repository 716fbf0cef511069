//! Ids that occur in more than one namespace of a collection — they would
//! collide in a target without namespaces — found with bounded memory: every
//! `(namespace, id)` spills into a hash partition of the id on disk, and one
//! partition at a time is held in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::RecordId;
use crate::snapshot::{CollectionManifest, Snapshot};

/// Ids held in memory at once, at most (one partition).
const PARTITION_RECORDS: u64 = 1_000_000;

/// One id found in several namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Collision {
    /// The id.
    pub id: RecordId,
    /// The namespaces holding it: the default namespace first, then by name.
    pub namespaces: Vec<Option<String>>,
}

/// Every id of collection `c` that more than one namespace holds, in id
/// order; the partitions go into a temporary directory inside `work_dir`.
/// Reads the whole collection: call it on a blocking thread.
pub(crate) fn find(
    snapshot: &Snapshot,
    c: &CollectionManifest,
    work_dir: &Path,
) -> Result<Vec<Collision>> {
    // Namespaces by rank: the default namespace first, then by name.
    let mut names: Vec<Option<String>> = c.namespaces.iter().map(|n| n.name.clone()).collect();
    names.sort();
    names.dedup();
    let rank: HashMap<Option<String>, u32> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i as u32))
        .collect();
    let partitions = c.record_count.div_ceil(PARTITION_RECORDS).clamp(1, 1024);
    let dir = tempfile::Builder::new()
        .prefix(".vecport-ids-")
        .tempdir_in(work_dir)
        .map_err(|e| Error::io(work_dir, e))?;
    let path = |i: u64| dir.path().join(format!("{i:05}.ids"));
    let mut files: Vec<BufWriter<File>> = (0..partitions)
        .map(|i| {
            File::create(path(i))
                .map(BufWriter::new)
                .map_err(|e| Error::io(path(i), e))
        })
        .collect::<Result<_>>()?;
    for batch in snapshot.records(c, 4096) {
        for r in batch? {
            let text = r.id.to_string();
            let i = partition(&text, partitions);
            let ns = rank.get(&r.namespace).copied().ok_or_else(|| {
                Error::InvalidData(format!(
                    "collection `{}`: record {text:?} is in namespace {:?}, which the manifest does not list",
                    c.name, r.namespace
                ))
            })?;
            let out = &mut files[i as usize];
            out.write_all(&ns.to_le_bytes())
                .and_then(|()| out.write_all(&(text.len() as u32).to_le_bytes()))
                .and_then(|()| out.write_all(text.as_bytes()))
                .map_err(|e| Error::io(path(i), e))?;
        }
    }
    for (i, f) in files.into_iter().enumerate() {
        f.into_inner()
            .map_err(|e| Error::io(path(i as u64), e.into_error()))?;
    }
    let mut out = Vec::new();
    for i in 0..partitions {
        let held = read_partition(&path(i))?;
        for (text, mut ranks) in held {
            if ranks.len() < 2 {
                continue;
            }
            ranks.sort_unstable();
            let id = RecordId::parse(&text, c.id_kind).ok_or_else(|| {
                Error::InvalidData(format!(
                    "collection `{}`: id {text:?} is not of kind {:?}",
                    c.name, c.id_kind
                ))
            })?;
            out.push(Collision {
                id,
                namespaces: ranks.iter().map(|&r| names[r as usize].clone()).collect(),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The partition of an id's text.
fn partition(text: &str, partitions: u64) -> u64 {
    let h = blake3::hash(text.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) % partitions
}

/// One partition: id text → the ranks of the namespaces holding it.
fn read_partition(path: &PathBuf) -> Result<HashMap<String, Vec<u32>>> {
    let mut input = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
    let mut held: HashMap<String, Vec<u32>> = HashMap::new();
    let mut word = [0u8; 4];
    loop {
        match input.read_exact(&mut word) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Error::io(path, e)),
        }
        let ns = u32::from_le_bytes(word);
        input
            .read_exact(&mut word)
            .map_err(|e| Error::io(path, e))?;
        let mut text = vec![0u8; u32::from_le_bytes(word) as usize];
        input
            .read_exact(&mut text)
            .map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(text)
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
        let ranks = held.entry(text).or_default();
        if !ranks.contains(&ns) {
            ranks.push(ns);
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CollectionSpec, IdKind, Record, VectorField};
    use crate::snapshot::{SnapshotWriter, SourceInfo, WriteOptions};

    fn snapshot(dir: &Path, records: Vec<Record>) -> Snapshot {
        let spec = CollectionSpec {
            name: "c".into(),
            id_kind: Some(IdKind::String),
            vectors: vec![VectorField::dense(Some(2), None)],
            ..CollectionSpec::default()
        };
        let mut w = SnapshotWriter::create(dir, WriteOptions::default()).unwrap();
        let mut c = w.collection(&spec, None).unwrap();
        c.write(records).unwrap();
        w.add(c.finish().unwrap());
        w.finish(SourceInfo::default()).unwrap();
        Snapshot::open(dir).unwrap()
    }

    #[test]
    fn ids_in_several_namespaces_are_found_with_their_holders() {
        let tmp = tempfile::tempdir().unwrap();
        let record = |id: &str, ns: Option<&str>| {
            let mut r = Record::dense(RecordId::String(id.into()), vec![1.0, 2.0]);
            r.namespace = ns.map(str::to_owned);
            r
        };
        let s = snapshot(
            &tmp.path().join("s"),
            vec![
                record("a", Some("n2")),
                record("a", None),
                record("b", Some("n1")),
                record("c", Some("n1")),
                record("c", Some("n2")),
                record("a", Some("n1")),
                record("d", None),
            ],
        );
        let c = &s.manifest().collections[0];
        let found = find(&s, c, tmp.path()).unwrap();
        let n = |s: &str| Some(s.to_owned());
        assert_eq!(
            found,
            vec![
                Collision {
                    id: RecordId::String("a".into()),
                    namespaces: vec![None, n("n1"), n("n2")],
                },
                Collision {
                    id: RecordId::String("c".into()),
                    namespaces: vec![n("n1"), n("n2")],
                },
            ]
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".vecport-ids-"))
            .collect();
        assert!(left.is_empty(), "the partitions are removed: {left:?}");
    }
}
