//! Ids a snapshot's collection holds more than once in one namespace. A
//! target keeps one record per id, so such a snapshot cannot be imported
//! faithfully; the import finds out before it writes anything.
//!
//! Memory stays bounded: the check pass keeps a 64-bit hash of each
//! (namespace, id), in memory up to [`IN_MEMORY`] records and beyond that
//! spilled into hash partitions in a temporary directory, each sorted on its
//! own. Only when two hashes are equal are the records read again, to tell a
//! true duplicate from a hash collision.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::{Record, RecordId};

/// Hashes kept in memory before they are spilled (8 bytes each: 32 MiB).
const IN_MEMORY: usize = 4 << 20;

/// The hash of a record's (namespace, id).
pub fn key_hash(namespace: Option<&str>, id: &RecordId) -> u64 {
    let mut h = DefaultHasher::new();
    namespace.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

/// Collects the key hashes of one collection's records.
pub struct IdHashes {
    memory: Vec<u64>,
    spill: Option<Spill>,
}

struct Spill {
    dir: tempfile::TempDir,
    files: Vec<BufWriter<File>>,
}

impl Spill {
    /// Partitions for about `expected` records, each of at most about
    /// [`IN_MEMORY`] hashes.
    fn new(expected: u64) -> Result<Spill> {
        let parts = (expected / IN_MEMORY as u64 + 1).next_power_of_two().max(2) as usize;
        let base = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix(".vecport-ids-")
            .tempdir_in(&base)
            .map_err(|e| Error::io(&base, e))?;
        let mut files = Vec::with_capacity(parts);
        for i in 0..parts {
            let path = dir.path().join(format!("{i}"));
            files.push(BufWriter::new(
                File::create(&path).map_err(|e| Error::io(&path, e))?,
            ));
        }
        Ok(Spill { dir, files })
    }

    fn push(&mut self, hash: u64) -> Result<()> {
        // The top bits pick the partition; they are as random as the rest.
        let i = (hash >> 32) as usize % self.files.len();
        self.files[i]
            .write_all(&hash.to_le_bytes())
            .map_err(|e| Error::io(self.dir.path(), e))
    }
}

impl IdHashes {
    /// Ready for a collection of about `expected` records.
    pub fn new(expected: u64) -> IdHashes {
        IdHashes {
            memory: Vec::with_capacity((expected as usize).min(IN_MEMORY)),
            spill: None,
        }
    }

    /// Adds a record's key.
    pub fn push(&mut self, record: &Record) -> Result<()> {
        let hash = key_hash(record.namespace.as_deref(), &record.id);
        if let Some(spill) = &mut self.spill {
            return spill.push(hash);
        }
        self.memory.push(hash);
        if self.memory.len() >= IN_MEMORY {
            let mut spill = Spill::new(self.memory.len() as u64 * 4)?;
            for h in self.memory.drain(..) {
                spill.push(h)?;
            }
            self.memory = Vec::new();
            self.spill = Some(spill);
        }
        Ok(())
    }

    /// The hashes that occur more than once.
    pub fn repeated(self) -> Result<HashSet<u64>> {
        let mut out = HashSet::new();
        let Some(spill) = self.spill else {
            repeated_in(self.memory, &mut out);
            return Ok(out);
        };
        let dir = spill.dir;
        for (i, file) in spill.files.into_iter().enumerate() {
            let path = dir.path().join(format!("{i}"));
            file.into_inner()
                .map_err(|e| Error::io(&path, e.into_error()))?;
            repeated_in(read_hashes(&path)?, &mut out);
        }
        Ok(out)
    }
}

fn read_hashes(path: &PathBuf) -> Result<Vec<u64>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
    let mut reader = BufReader::new(file);
    let mut hashes = Vec::with_capacity(len / 8);
    let mut buf = [0u8; 8];
    loop {
        match reader.read_exact(&mut buf) {
            Ok(()) => hashes.push(u64::from_le_bytes(buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(hashes),
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

fn repeated_in(mut hashes: Vec<u64>, out: &mut HashSet<u64>) {
    hashes.sort_unstable();
    for w in hashes.windows(2) {
        if w[0] == w[1] {
            out.insert(w[0]);
        }
    }
}

/// Among records whose key hash is in `suspects`, counts each (namespace, id).
#[derive(Default)]
pub struct Confirm {
    seen: HashMap<(Option<String>, RecordId), u64>,
}

impl Confirm {
    /// Counts `record` if its hash is a suspect.
    pub fn observe(&mut self, suspects: &HashSet<u64>, record: &Record) {
        if suspects.contains(&key_hash(record.namespace.as_deref(), &record.id)) {
            *self
                .seen
                .entry((record.namespace.clone(), record.id.clone()))
                .or_default() += 1;
        }
    }

    /// The keys seen more than once, with their counts, in order.
    pub fn duplicates(self) -> Vec<(Option<String>, RecordId, u64)> {
        let mut d: Vec<_> = self
            .seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((ns, id), n)| (ns, id, n))
            .collect();
        d.sort();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ns: Option<&str>, id: u64) -> Record {
        let mut r = Record::dense(RecordId::Uint(id), vec![1.0]);
        r.namespace = ns.map(str::to_owned);
        r
    }

    #[test]
    fn finds_repeated_keys_per_namespace() {
        let records = [
            rec(None, 1),
            rec(Some("a"), 1),
            rec(None, 2),
            rec(None, 1),
            rec(Some("a"), 3),
        ];
        let mut h = IdHashes::new(records.len() as u64);
        for r in &records {
            h.push(r).unwrap();
        }
        let suspects = h.repeated().unwrap();
        assert_eq!(suspects.len(), 1);
        let mut c = Confirm::default();
        for r in &records {
            c.observe(&suspects, r);
        }
        assert_eq!(c.duplicates(), [(None, RecordId::Uint(1), 2)]);
    }

    #[test]
    fn spilled_partitions_find_the_same() {
        let mut spill = Spill::new(10 * IN_MEMORY as u64).unwrap();
        assert!(spill.files.len() >= 8);
        let mut h = IdHashes {
            memory: Vec::new(),
            spill: None,
        };
        for i in 0..50_000u64 {
            h.push(&rec(None, i)).unwrap();
        }
        // Move what is in memory into the spill, as a large collection would.
        for x in h.memory.drain(..) {
            spill.push(x).unwrap();
        }
        spill.push(key_hash(None, &RecordId::Uint(4242))).unwrap();
        h.spill = Some(spill);
        h.push(&rec(None, 17)).unwrap();
        let suspects = h.repeated().unwrap();
        let expected: HashSet<u64> = [4242, 17]
            .iter()
            .map(|i| key_hash(None, &RecordId::Uint(*i)))
            .collect();
        assert_eq!(suspects, expected);
    }
}
