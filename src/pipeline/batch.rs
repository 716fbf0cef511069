//! Cutting a record stream into requests bounded by count AND bytes.

use std::mem;

use crate::connectors::BatchLimits;
use crate::error::{Error, Result};
use crate::model::Record;

/// Collects records into batches that fit a sink's [`BatchLimits`].
#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    current: Vec<Record>,
    bytes: usize,
}

impl Batcher {
    /// A batcher for `limits` (each limit at least 1).
    pub fn new(limits: BatchLimits) -> Batcher {
        Batcher {
            limits: BatchLimits {
                max_records: limits.max_records.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            current: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a record; returns a full batch when adding it would overflow the
    /// current one. A record larger than the byte limit on its own can never
    /// be sent and is refused by id.
    pub fn push(&mut self, record: Record) -> Result<Option<Vec<Record>>> {
        let size = record.json_size_estimate();
        if size > self.limits.max_bytes {
            return Err(Error::InvalidData(format!(
                "record {:?} is about {size} bytes encoded, more than the target's request limit of {} bytes; it can never be sent",
                record.id.to_string(),
                self.limits.max_bytes
            )));
        }
        let full = if !self.current.is_empty()
            && (self.current.len() >= self.limits.max_records
                || self.bytes + size > self.limits.max_bytes)
        {
            self.bytes = 0;
            Some(mem::take(&mut self.current))
        } else {
            None
        };
        self.bytes += size;
        self.current.push(record);
        Ok(full)
    }

    /// The last, partly filled batch.
    pub fn finish(&mut self) -> Option<Vec<Record>> {
        self.bytes = 0;
        (!self.current.is_empty()).then(|| mem::take(&mut self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordId;

    fn rec(i: u64, dim: usize) -> Record {
        Record::dense(RecordId::Uint(i), vec![0.5; dim])
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let size = rec(0, 100).json_size_estimate();
        let mut b = Batcher::new(BatchLimits {
            max_records: 10,
            max_bytes: size * 3,
        });
        let mut batches = Vec::new();
        for i in 0..20 {
            if let Some(full) = b.push(rec(i, 100)).unwrap() {
                batches.push(full);
            }
        }
        batches.extend(b.finish());
        assert!(batches.iter().all(|x| x.len() <= 3), "byte limit holds");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 20);

        let mut b = Batcher::new(BatchLimits {
            max_records: 4,
            max_bytes: usize::MAX,
        });
        let mut n = Vec::new();
        for i in 0..10 {
            if let Some(full) = b.push(rec(i, 2)).unwrap() {
                n.push(full.len());
            }
        }
        n.extend(b.finish().map(|x| x.len()));
        assert_eq!(n, [4, 4, 2]);
    }

    #[test]
    fn oversized_record_is_named() {
        let mut b = Batcher::new(BatchLimits {
            max_records: 10,
            max_bytes: 100,
        });
        let err = b.push(rec(7, 1000)).unwrap_err().to_string();
        assert!(err.contains("\"7\"") && err.contains("never"), "{err}");
    }
}
