//! The change report: every change made to a record on its way into a target,
//! one JSON object per line, and counts per kind for the summary. A change
//! that loses something (metadata flattened, encoded or dropped; a record
//! skipped; an id whose kind the target cannot keep) has a line per record; a
//! rule an export undoes (a key renamed, an id kept beside a derived one, a
//! namespace kept in a metadata key) has one line per collection with the
//! number of records it changed (`spec/MAPPING.md`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::mapping::{Change, ChangeKind};
use crate::model::RecordId;

/// Counts of changes by kind.
pub type ChangeCounts = BTreeMap<ChangeKind, u64>;

/// One line of the report.
#[derive(Serialize)]
struct Line<'a> {
    collection: &'a str,
    target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    /// Integers stay numbers, everything else is a string.
    id: serde_json::Value,
    #[serde(flatten)]
    change: &'a Change,
}

/// A line for the records one rule changed.
#[derive(Serialize)]
struct RuleLine<'a> {
    collection: &'a str,
    target: &'a str,
    change: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    records: u64,
    reason: &'a str,
}

/// Writes the report lazily: the file is created on the first change, so an
/// import that changes nothing leaves nothing behind.
pub(crate) struct ChangeLog {
    path: Option<PathBuf>,
    out: Option<BufWriter<File>>,
    counts: ChangeCounts,
}

impl ChangeLog {
    /// A report written to `path` (only counted when `None`).
    pub(crate) fn new(path: Option<&Path>) -> ChangeLog {
        ChangeLog {
            path: path.map(Path::to_path_buf),
            out: None,
            counts: ChangeCounts::new(),
        }
    }

    /// Records the changes made to one record.
    pub(crate) fn record(
        &mut self,
        collection: &str,
        target: &str,
        namespace: Option<&str>,
        id: &RecordId,
        changes: &[Change],
    ) -> Result<()> {
        for change in changes {
            *self.counts.entry(change.change).or_default() += 1;
            let line = Line {
                collection,
                target,
                namespace,
                id: match id {
                    RecordId::Uint(n) => (*n).into(),
                    other => other.to_string().into(),
                },
                change,
            };
            self.write(&line)?;
        }
        Ok(())
    }

    /// Records that one rule, which an export undoes, changed `records`
    /// records of a collection.
    pub(crate) fn rule(
        &mut self,
        collection: &str,
        target: &str,
        change: ChangeKind,
        key: Option<&str>,
        records: u64,
        reason: &str,
    ) -> Result<()> {
        *self.counts.entry(change).or_default() += records;
        self.write(&RuleLine {
            collection,
            target,
            change,
            key,
            records,
            reason,
        })
    }

    fn write(&mut self, line: &impl Serialize) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.out.is_none() {
            let file = File::create_new(path).map_err(|e| Error::io(path, e))?;
            self.out = Some(BufWriter::new(file));
        }
        let out = self.out.as_mut().expect("opened above");
        serde_json::to_writer(&mut *out, line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| Error::io(path, e))
    }

    /// Takes the counts gathered since the last call.
    pub(crate) fn take_counts(&mut self) -> ChangeCounts {
        std::mem::take(&mut self.counts)
    }

    /// Removes the report (the import it describes did not happen).
    pub(crate) fn discard(self) {
        if let (Some(path), Some(out)) = (self.path, self.out) {
            drop(out);
            let _ = std::fs::remove_file(path);
        }
    }

    /// Flushes and syncs the report; returns its path when one was written.
    pub(crate) fn finish(self) -> Result<Option<PathBuf>> {
        let (Some(path), Some(out)) = (self.path, self.out) else {
            return Ok(None);
        };
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(Some(path))
    }
}
