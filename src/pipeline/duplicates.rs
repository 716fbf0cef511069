//! Ids a collection holds more than once in one namespace. A target keeps
//! one record per id, so such a snapshot cannot be imported faithfully: the
//! import finds out before it writes anything ([`IdHashes`], [`Confirm`]),
//! and an export refuses a source that gives a record twice as it reads it
//! ([`SeenKeys`]).
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

/// The keys (namespace, id) an export has read so far, to catch a source
/// that gives a record a second time — it pages wrongly, or returns the same
/// page for every offset — as soon as it does, with bounded memory.
///
/// Up to [`SEEN_IN_MEMORY`] bytes of keys are kept in a hash set. Beyond
/// that every key goes to a partition file (by a hash of the key), and the
/// hashes of the last [`RECENT`] keys stay in memory: a key whose hash is
/// among them is looked for in its partition at once, which catches a
/// repeating page right away. Every key is checked against all earlier ones
/// each time the number read doubles and at the end, one partition in memory
/// at a time (partitions are split when they outgrow [`PARTITION_BYTES`]).
pub struct SeenKeys {
    memory: HashSet<Vec<u8>>,
    memory_bytes: usize,
    spill: Option<KeySpill>,
    recent: HashSet<u64>,
    order: std::collections::VecDeque<u64>,
    total: u64,
    next_check: u64,
}

/// Bytes of keys held in memory before they are spilled.
const SEEN_IN_MEMORY: usize = 64 << 20;
/// Hashes of the latest keys kept in memory once spilled.
const RECENT: usize = 1 << 20;
/// Largest partition read into memory at once (while there are fewer than
/// [`MAX_PARTITIONS`]).
const PARTITION_BYTES: u64 = 64 << 20;
/// Most partition files.
const MAX_PARTITIONS: usize = 1024;

struct KeySpill {
    dir: tempfile::TempDir,
    files: Vec<BufWriter<File>>,
    sizes: Vec<u64>,
    /// Partitions are picked by the top `bits` bits of a key's hash.
    bits: u32,
    generation: u32,
}

/// A record's key as bytes: namespace, id kind and id text.
fn encode_key(namespace: Option<&str>, id: &RecordId) -> Vec<u8> {
    let text = id.to_string();
    let mut k = Vec::with_capacity(text.len() + namespace.map_or(1, |n| n.len() + 5) + 1);
    match namespace {
        None => k.push(0),
        Some(n) => {
            k.push(1);
            k.extend_from_slice(&(n.len() as u32).to_le_bytes());
            k.extend_from_slice(n.as_bytes());
        }
    }
    k.push(match id {
        RecordId::String(_) => 0,
        RecordId::Uint(_) => 1,
        RecordId::Uuid(_) => 2,
    });
    k.extend_from_slice(text.as_bytes());
    k
}

/// A key, as a message names it: `"r-7"` or `"r-7" in namespace "eu"`.
pub fn describe_key(key: &[u8]) -> String {
    let (namespace, rest) = match key.first() {
        Some(1) if key.len() >= 5 => {
            let n = u32::from_le_bytes(key[1..5].try_into().expect("4 bytes")) as usize;
            let end = (5 + n).min(key.len());
            (Some(String::from_utf8_lossy(&key[5..end])), &key[end..])
        }
        _ => (None, key.get(1..).unwrap_or_default()),
    };
    let id = String::from_utf8_lossy(rest.get(1..).unwrap_or_default());
    match namespace {
        Some(ns) => format!("{id:?} in namespace {ns:?}"),
        None => format!("{id:?}"),
    }
}

fn hash_bytes(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl KeySpill {
    fn new(bits: u32) -> Result<KeySpill> {
        let base = std::env::temp_dir();
        let dir = tempfile::Builder::new()
            .prefix(".vecport-seen-")
            .tempdir_in(&base)
            .map_err(|e| Error::io(&base, e))?;
        let mut spill = KeySpill {
            dir,
            files: Vec::new(),
            sizes: Vec::new(),
            bits,
            generation: 0,
        };
        spill.open_files()?;
        Ok(spill)
    }

    fn path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}-{i}", self.generation))
    }

    fn open_files(&mut self) -> Result<()> {
        let n = 1usize << self.bits;
        self.files = (0..n)
            .map(|i| {
                let path = self.path(i);
                File::create(&path)
                    .map(BufWriter::new)
                    .map_err(|e| Error::io(&path, e))
            })
            .collect::<Result<_>>()?;
        self.sizes = vec![0; n];
        Ok(())
    }

    fn partition(&self, hash: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (hash >> (64 - self.bits)) as usize
        }
    }

    fn push(&mut self, key: &[u8], hash: u64) -> Result<()> {
        let i = self.partition(hash);
        let path = self.dir.path().to_owned();
        let out = &mut self.files[i];
        out.write_all(&(key.len() as u32).to_le_bytes())
            .and_then(|()| out.write_all(key))
            .map_err(|e| Error::io(&path, e))?;
        self.sizes[i] += key.len() as u64 + 4;
        Ok(())
    }

    fn flush(&mut self, i: usize) -> Result<()> {
        let path = self.path(i);
        self.files[i].flush().map_err(|e| Error::io(&path, e))
    }

    /// Calls `each` with every key of partition `i`.
    fn read(&mut self, i: usize, mut each: impl FnMut(Vec<u8>) -> Result<()>) -> Result<()> {
        self.flush(i)?;
        let path = self.path(i);
        let mut input = BufReader::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
        let mut word = [0u8; 4];
        loop {
            match input.read_exact(&mut word) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(Error::io(&path, e)),
            }
            let mut key = vec![0u8; u32::from_le_bytes(word) as usize];
            input
                .read_exact(&mut key)
                .map_err(|e| Error::io(&path, e))?;
            each(key)?;
        }
    }

    /// Doubles the partitions, moving every key to its new partition.
    fn split(&mut self) -> Result<()> {
        let old_bits = self.bits;
        let old_generation = self.generation;
        for i in 0..self.files.len() {
            self.flush(i)?;
        }
        let old_paths: Vec<PathBuf> = (0..self.files.len()).map(|i| self.path(i)).collect();
        self.bits += 1;
        self.generation += 1;
        self.open_files()?;
        for path in old_paths {
            let mut input = BufReader::new(File::open(&path).map_err(|e| Error::io(&path, e))?);
            let mut word = [0u8; 4];
            loop {
                match input.read_exact(&mut word) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(Error::io(&path, e)),
                }
                let mut key = vec![0u8; u32::from_le_bytes(word) as usize];
                input
                    .read_exact(&mut key)
                    .map_err(|e| Error::io(&path, e))?;
                let hash = hash_bytes(&key);
                self.push(&key, hash)?;
            }
            let _ = std::fs::remove_file(&path);
        }
        debug_assert!(self.bits == old_bits + 1 && self.generation == old_generation + 1);
        Ok(())
    }

    /// A key some partition holds twice, if any.
    fn repeated(&mut self) -> Result<Option<Vec<u8>>> {
        while self.files.len() < MAX_PARTITIONS && self.sizes.iter().any(|&s| s > PARTITION_BYTES) {
            self.split()?;
        }
        for i in 0..self.files.len() {
            let mut seen = HashSet::new();
            let mut found = None;
            self.read(i, |key| {
                if found.is_none() && !seen.insert(key.clone()) {
                    found = Some(key);
                }
                Ok(())
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

impl Default for SeenKeys {
    fn default() -> Self {
        SeenKeys::new()
    }
}

impl SeenKeys {
    /// No key seen yet.
    pub fn new() -> SeenKeys {
        SeenKeys {
            memory: HashSet::new(),
            memory_bytes: 0,
            spill: None,
            recent: HashSet::new(),
            order: std::collections::VecDeque::new(),
            total: 0,
            next_check: 0,
        }
    }

    /// Records `record`'s key; `Some` (the key, for [`describe_key`]) when a
    /// key read before is seen again — at once for keys in memory or among
    /// the latest, else at the next full check.
    pub fn observe(&mut self, namespace: Option<&str>, id: &RecordId) -> Result<Option<Vec<u8>>> {
        let key = encode_key(namespace, id);
        self.total += 1;
        let Some(spill) = &mut self.spill else {
            self.memory_bytes += key.len() + 32;
            if self.memory.contains(&key) {
                return Ok(Some(key));
            }
            self.memory.insert(key);
            if self.memory_bytes > SEEN_IN_MEMORY {
                self.spill_memory()?;
            }
            return Ok(None);
        };
        let hash = hash_bytes(&key);
        if self.recent.contains(&hash) {
            let i = spill.partition(hash);
            let mut again = false;
            spill.read(i, |k| {
                again |= k == key;
                Ok(())
            })?;
            if again {
                return Ok(Some(key));
            }
        }
        spill.push(&key, hash)?;
        if self.order.len() == RECENT
            && let Some(old) = self.order.pop_front()
        {
            self.recent.remove(&old);
        }
        self.order.push_back(hash);
        self.recent.insert(hash);
        if self.total >= self.next_check {
            self.next_check = self.total.saturating_mul(2);
            return spill.repeated();
        }
        Ok(None)
    }

    fn spill_memory(&mut self) -> Result<()> {
        let parts = (self.memory_bytes as u64 * 4 / PARTITION_BYTES + 1).next_power_of_two();
        let mut spill = KeySpill::new(parts.trailing_zeros())?;
        for key in self.memory.drain() {
            let hash = hash_bytes(&key);
            spill.push(&key, hash)?;
        }
        self.memory = HashSet::new();
        self.next_check = self.total.saturating_mul(2);
        self.spill = Some(spill);
        Ok(())
    }

    /// After the last record: a key seen twice, if any.
    pub fn finish(mut self) -> Result<Option<Vec<u8>>> {
        match &mut self.spill {
            Some(spill) => spill.repeated(),
            None => Ok(None),
        }
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

    #[test]
    fn seen_keys_catch_a_repeated_key_in_memory_and_spilled() {
        let mut seen = SeenKeys::new();
        assert!(seen.observe(None, &RecordId::Uint(1)).unwrap().is_none());
        assert!(
            seen.observe(Some("a"), &RecordId::Uint(1))
                .unwrap()
                .is_none()
        );
        assert!(
            seen.observe(None, &RecordId::String("1".into()))
                .unwrap()
                .is_none()
        );
        let again = seen
            .observe(Some("a"), &RecordId::Uint(1))
            .unwrap()
            .unwrap();
        assert_eq!(describe_key(&again), "\"1\" in namespace \"a\"");

        // Spilled: a key repeated at once is caught at once, one repeated
        // long after at the next full check or at the end.
        let mut seen = SeenKeys::new();
        for i in 0..1000u64 {
            seen.observe(None, &RecordId::Uint(i)).unwrap();
        }
        seen.spill_memory().unwrap();
        assert!(seen.observe(None, &RecordId::Uint(5000)).unwrap().is_none());
        let again = seen.observe(None, &RecordId::Uint(5000)).unwrap().unwrap();
        assert_eq!(describe_key(&again), "\"5000\"");

        let mut seen = SeenKeys::new();
        for i in 0..1000u64 {
            seen.observe(None, &RecordId::String(format!("k{i}")))
                .unwrap();
        }
        seen.spill_memory().unwrap();
        seen.recent.clear(); // as if the first key were long ago
        seen.order.clear();
        seen.next_check = u64::MAX;
        assert!(
            seen.observe(None, &RecordId::String("k7".into()))
                .unwrap()
                .is_none()
        );
        let again = seen.finish().unwrap().unwrap();
        assert_eq!(describe_key(&again), "\"k7\"");
    }

    #[test]
    fn split_partitions_keep_every_key() {
        let mut spill = KeySpill::new(0).unwrap();
        for i in 0..5000u64 {
            let k = encode_key(None, &RecordId::Uint(i));
            spill.push(&k, hash_bytes(&k)).unwrap();
        }
        let k = encode_key(None, &RecordId::Uint(4321));
        spill.push(&k, hash_bytes(&k)).unwrap();
        spill.split().unwrap();
        spill.split().unwrap();
        assert_eq!(spill.files.len(), 4);
        let expected: u64 = (0..5000u64)
            .chain([4321])
            .map(|i| 4 + 1 + 1 + i.to_string().len() as u64)
            .sum();
        assert_eq!(spill.sizes.iter().sum::<u64>(), expected);
        let again = spill.repeated().unwrap().unwrap();
        assert_eq!(describe_key(&again), "\"4321\"");
    }
}
