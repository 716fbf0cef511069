//! The snapshot format (`spec/FORMAT.md`): a directory with `manifest.json`,
//! its checksum, and Parquet parts per collection. This module knows no
//! database; it turns neutral [`crate::model::Record`]s into files and back.

mod accept;
pub mod block;
pub mod columns;
mod dense;
mod guard;
pub mod layout;
pub mod manifest;
pub mod reader;
mod sink;
pub mod writer;

pub use block::RecordBlock;
pub use manifest::{CollectionManifest, Manifest, MetadataSchema, PartManifest, SourceInfo};
pub use reader::{Snapshot, VerifyReport};
pub use writer::{CollectionWriter, SnapshotWriter, VectorCompression, WriteOptions};
