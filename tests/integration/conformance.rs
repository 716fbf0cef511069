//! The connector conformance suite: one set of test bodies every connector
//! runs. The in-memory connector runs it on every `cargo test`; real servers
//! run it when their URL is set (always in CI).

use std::path::Path;
use std::sync::Arc;

use vecport::connectors::memory::{FULL as ALL_CAPABILITIES, Memory};
use vecport::connectors::{Capabilities, Connector, ExistingTarget, ScanOptions, Sink, Source};
use vecport::error::{Category, Error};
use vecport::model::{CollectionSpec, Metric, Record};
use vecport::pipeline::{self, ExportOptions, ImportOptions, Quiet};
use vecport::snapshot::{Manifest, Snapshot, SnapshotWriter, SourceInfo, WriteOptions};

use crate::support::data::{self, Flavor};
use crate::support::{databases, unique_name};

/// What the suite needs to know about one connector.
pub struct Fixture {
    /// Opens the connector on a URL naming no collection.
    pub open: Box<dyn Fn() -> Arc<dyn Connector> + Send + Sync>,
    /// Metadata the connector stores as it is.
    pub flavor: Flavor,
    /// Metric to create collections with.
    pub metric: Metric,
    /// Units in the last place by which the database may change metadata floats on write.
    pub float_ulps: u64,
    /// The database stores metadata integers as floats (Pinecone).
    pub ints_as_floats: bool,
    /// Keeps a server (an emulator) alive as long as the fixture.
    pub _server: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// A connector lacking a feature, and a collection needing it.
    pub unsupported: Box<dyn Fn() -> UnsupportedCase + Send + Sync>,
}

impl Fixture {
    /// What the connector declares it can store.
    fn capabilities(&self) -> Capabilities {
        (self.open)().capabilities()
    }

    /// Whether the connector stores the rich collection: named dense,
    /// sparse and multivector fields.
    fn rich(&self) -> bool {
        let c = self.capabilities();
        c.sparse && c.multivector && c.named_vectors
    }

    /// Whether records may carry namespaces.
    fn namespaces(&self) -> bool {
        self.capabilities().namespaces
    }

    /// Records as the database is expected to give them back (integers as floats for Pinecone).
    fn normalise(&self, mut records: Vec<Record>) -> Vec<Record> {
        if self.ints_as_floats {
            for r in &mut records {
                for v in r.metadata.iter_mut().flat_map(|m| m.values_mut()) {
                    if let Some(f) = v
                        .as_i64()
                        .map(|i| i as f64)
                        .or_else(|| v.as_u64().map(|u| u as f64))
                    {
                        *v = serde_json::json!(f);
                    }
                }
            }
        }
        records
    }
}

/// A connector, and a collection with records it cannot store.
pub type UnsupportedCase = (Arc<dyn Connector>, CollectionSpec, Vec<Record>);

/// Writes `records` as a one-collection snapshot in `dir`.
pub fn write_snapshot(dir: &Path, spec: &CollectionSpec, records: Vec<Record>) -> Manifest {
    let options = WriteOptions {
        row_group_rows: 300,
        ..WriteOptions::default()
    };
    let mut w = SnapshotWriter::create(dir, options).unwrap();
    let mut c = w.collection(spec, None).unwrap();
    for chunk in records.chunks(700) {
        c.write(chunk.to_vec()).unwrap();
    }
    w.add(c.finish().unwrap());
    w.finish(SourceInfo {
        kind: "test".into(),
        ..SourceInfo::default()
    })
    .unwrap()
}

/// Every record of the snapshot's only collection.
pub fn read_snapshot(dir: &Path) -> (Snapshot, Vec<Record>) {
    let s = Snapshot::open(dir).unwrap();
    assert!(s.verify().is_ok(), "{:?}", s.verify().problems);
    let c = &s.manifest().collections[0];
    let records = s.records(c, 1000).flat_map(Result::unwrap).collect();
    (s.clone(), records)
}

fn import_options(name: &str, target: &str, existing: ExistingTarget) -> ImportOptions {
    ImportOptions {
        renames: vec![(name.to_owned(), target.to_owned())],
        existing,
        ..ImportOptions::default()
    }
}

fn export_options(name: &str, page_size: usize) -> ExportOptions {
    ExportOptions {
        collections: vec![name.to_owned()],
        scan: ScanOptions {
            page_size,
            ..ScanOptions::default()
        },
        ..ExportOptions::default()
    }
}

/// Matches exported vector fields to `spec`'s by name (a database may list
/// them in its own order, and declare fields of its own that must then hold
/// no values) and reorders the records' vector slots like `spec`.
fn align_fields(
    spec: &CollectionSpec,
    c: &vecport::snapshot::CollectionManifest,
    got: &mut [Record],
    check_dimensions: bool,
) {
    let records_nonempty = check_dimensions;
    // Fields are matched by name: a database may list them in its own order.
    // A database may also declare fields of its own (Pinecone's sparse
    // field); they must hold no values.
    let mut order = Vec::new();
    for want in &spec.vectors {
        let at = c.vectors.iter().position(|v| v.field.name == want.name);
        let have = &c.vectors[at.unwrap_or_else(|| panic!("vector field {:?} lost", want.name))];
        assert_eq!(want.kind, have.field.kind);
        assert_eq!(want.metric, have.field.metric, "metric kept");
        if records_nonempty {
            assert_eq!(want.dimension, have.field.dimension, "dimension kept");
        }
        order.extend(at);
    }
    for r in got.iter_mut() {
        for (i, v) in r.vectors.iter().enumerate() {
            assert!(
                order.contains(&i) || v.is_none(),
                "extra field {i} has a value in {}",
                r.id
            );
        }
        r.vectors = order.iter().map(|&i| r.vectors[i].clone()).collect();
    }
}

/// Imports `records` under a new name, exports them back and compares.
async fn round_trip(
    f: &Fixture,
    spec: CollectionSpec,
    records: Vec<Record>,
    page_size: usize,
) -> (Snapshot, Vec<Record>) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, back) = (tmp.path().join("in"), tmp.path().join("out"));
    let name = spec.name.clone();
    write_snapshot(&src, &spec, records.clone());
    let conn = (f.open)();
    let target = unique_name("conf");
    let report = pipeline::import(
        &src,
        conn.as_ref() as &dyn Sink,
        &import_options(&name, &target, ExistingTarget::Refuse),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(report.collections[0].target_count, records.len() as u64);
    pipeline::export(
        conn.as_ref() as &dyn Source,
        &back,
        &export_options(&target, page_size),
        &Quiet,
    )
    .await
    .unwrap();
    let (snapshot, mut got) = read_snapshot(&back);
    got.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, records.len() as u64);
    align_fields(&spec, c, &mut got, !records.is_empty());
    let (records, got) = (f.normalise(records), f.normalise(got));
    if let Some(diff) = data::first_difference_within(&records, &got, 0.0, f.float_ulps) {
        panic!("round trip changed records: {diff}");
    }
    (snapshot, got)
}

pub async fn round_trip_every_metadata_type(f: &Fixture) {
    let spec = data::spec(&unique_name("every-type"), 16, f.metric);
    let records = data::records(1500, 16, 7, f.flavor);
    round_trip(f, spec, records, 1000).await;
}

pub async fn awkward_ids(f: &Fixture) {
    let spec = data::spec(&unique_name("awkward"), 4, f.metric);
    let n = data::awkward_ids().len();
    let (_, got) = round_trip(f, spec, data::records(n, 4, 3, f.flavor), 1000).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.id.to_string()).collect();
    let mut want = data::awkward_ids();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);
}

pub async fn rich_collection(f: &Fixture) {
    if !f.rich() {
        // The connector declares it cannot hold such a collection: an
        // import of it is refused before anything is written.
        let spec = data::rich_spec(&unique_name("rich"));
        let tmp = tempfile::tempdir().unwrap();
        write_snapshot(tmp.path(), &spec, data::rich_records(10, 5));
        let conn = (f.open)();
        let err = pipeline::import(
            tmp.path(),
            conn.as_ref() as &dyn Sink,
            &import_options(&spec.name, &unique_name("rich"), ExistingTarget::Refuse),
            &Quiet,
        )
        .await
        .unwrap_err();
        assert_eq!(err.category(), Category::Data, "{err:?}");
        return;
    }
    let mut spec = data::rich_spec(&unique_name("rich"));
    for v in spec
        .vectors
        .iter_mut()
        .filter(|v| v.kind != vecport::model::VectorKind::Sparse)
    {
        // A metric the database stores exactly (Qdrant normalises cosine vectors).
        v.metric = Some(f.metric);
    }
    let mut records = data::rich_records(400, 5);
    if !f.namespaces() {
        records.iter_mut().for_each(|r| r.namespace = None);
    }
    round_trip(f, spec, records, 64).await;
}

pub async fn empty_collection(f: &Fixture) {
    let spec = data::spec(&unique_name("empty"), 8, f.metric);
    let (snapshot, got) = round_trip(f, spec, Vec::new(), 100).await;
    assert!(got.is_empty());
    assert!(snapshot.manifest().collections[0].parts.is_empty());
}

pub async fn many_pages(f: &Fixture) {
    let spec = data::spec(&unique_name("pages"), 8, f.metric);
    round_trip(f, spec, data::records(2345, 8, 11, f.flavor), 100).await;
}

pub async fn reimport_is_idempotent(f: &Fixture) {
    let tmp = tempfile::tempdir().unwrap();
    let spec = data::spec(&unique_name("again"), 8, f.metric);
    let records = data::records(600, 8, 13, f.flavor);
    write_snapshot(tmp.path(), &spec, records.clone());
    let conn = (f.open)();
    let target = unique_name("again-target");
    for existing in [
        ExistingTarget::Refuse,
        ExistingTarget::Append,
        ExistingTarget::Append,
    ] {
        let r = pipeline::import(
            tmp.path(),
            conn.as_ref() as &dyn Sink,
            &import_options(&spec.name, &target, existing),
            &Quiet,
        )
        .await
        .unwrap();
        assert_eq!(
            r.collections[0].target_count, 600,
            "no duplicates after {existing:?}"
        );
    }
    // Refusing an existing target writes nothing and says what to do.
    let err = pipeline::import(
        tmp.path(),
        conn.as_ref() as &dyn Sink,
        &import_options(&spec.name, &target, ExistingTarget::Refuse),
        &Quiet,
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), Category::Data, "{err}");
    assert!(
        err.to_string().contains(&target) && err.to_string().contains("exists"),
        "{err}"
    );
    let back = tempfile::tempdir().unwrap();
    pipeline::export(
        conn.as_ref() as &dyn Source,
        &back.path().join("s"),
        &export_options(&target, 1000),
        &Quiet,
    )
    .await
    .unwrap();
    let (snapshot, mut got) = read_snapshot(&back.path().join("s"));
    align_fields(&spec, &snapshot.manifest().collections[0], &mut got, true);
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        data::first_difference_within(&f.normalise(records), &f.normalise(got), 0.0, f.float_ulps),
        None
    );
}

pub async fn missing_collection_is_named(f: &Fixture) {
    let tmp = tempfile::tempdir().unwrap();
    let conn = (f.open)();
    let missing = unique_name("no-such-collection");
    let dir = tmp.path().join("snap");
    let err = pipeline::export(
        conn.as_ref() as &dyn Source,
        &dir,
        &export_options(&missing, 10),
        &Quiet,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(!dir.exists(), "a failed export leaves no directory behind");
}

pub async fn unsupported_feature_is_refused(f: &Fixture) {
    let (conn, spec, records) = (f.unsupported)();
    let tmp = tempfile::tempdir().unwrap();
    write_snapshot(tmp.path(), &spec, records);
    let target = unique_name("unsupported");
    let err = pipeline::import(
        tmp.path(),
        conn.as_ref() as &dyn Sink,
        &import_options(&spec.name, &target, ExistingTarget::Refuse),
        &Quiet,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
    let names: Vec<String> = (conn.as_ref() as &dyn Source)
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert!(!names.contains(&target), "nothing was created");
}

/// A runtime for one test body; fixtures are made (and dropped) outside it,
/// so that emulators can run runtimes of their own.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The suite's tests in module `$module`, each skipped when `$fixture` is
/// `None`.
macro_rules! conformance {
    ($module:ident, $fixture:expr) => {
        conformance!(
            $module,
            $fixture,
            round_trip_every_metadata_type,
            awkward_ids,
            rich_collection,
            empty_collection,
            many_pages,
            reimport_is_idempotent,
            missing_collection_is_named,
            unsupported_feature_is_refused
        );
    };
    ($module:ident, $fixture:expr, $($case:ident),+) => {
        mod $module {
            use super::*;

            fn fixture() -> Option<Fixture> {
                $fixture
            }

            $(
                #[test]
                fn $case() {
                    if let Some(f) = fixture() {
                        runtime().block_on(super::$case(&f))
                    }
                }
            )+
        }
    };
}

/// The case of [`Fixture::unsupported`]: the connector `open` makes and the
/// rich collection, under `name`.
fn lacking(
    open: impl Fn() -> Arc<dyn Connector> + Send + Sync + 'static,
    name: &'static str,
) -> Box<dyn Fn() -> UnsupportedCase + Send + Sync> {
    Box::new(move || (open(), data::rich_spec(name), data::rich_records(10, 1)))
}

fn memory_fixture() -> Fixture {
    let store = unique_name("store");
    Fixture {
        open: Box::new(move || {
            Arc::new(Memory::new(&store, None, ALL_CAPABILITIES).with_max_records(97))
        }),
        flavor: data::FULL,
        metric: Metric::Cosine,
        float_ulps: 0,
        ints_as_floats: false,
        _server: None,
        unsupported: Box::new(|| {
            let caps = Capabilities {
                sparse: false,
                multivector: false,
                ..ALL_CAPABILITIES
            };
            let conn: Arc<dyn Connector> =
                Arc::new(Memory::new(&unique_name("narrow"), None, caps));
            (
                conn,
                data::rich_spec("needs-sparse"),
                data::rich_records(10, 1),
            )
        }),
    }
}

fn chroma_fixture() -> Option<Fixture> {
    let db = databases::chroma()?;
    let open = db.opener();
    Some(Fixture {
        open: Box::new(open.clone()),
        flavor: data::FLAT,
        // l2 stores values bit-exact; cosine re-rounds (tested in chroma.rs).
        metric: Metric::L2,
        _server: db._server,
        ints_as_floats: false,
        // Chroma's JSON parser is not correctly rounded: ~1 in 9 metadata
        // floats is stored 1 ulp off on first write (fixtures/chroma/README.md).
        float_ulps: 1,
        unsupported: lacking(open, "needs-sparse"),
    })
}

fn qdrant_fixture() -> Option<Fixture> {
    let db = databases::qdrant()?;
    let open = db.opener();
    Some(Fixture {
        open: Box::new(open.clone()),
        flavor: data::FULL,
        // Euclid stores vectors as they are; Cosine normalises them (tested in qdrant.rs).
        metric: Metric::L2,
        ints_as_floats: false,
        // Qdrant's JSON parser may move a payload float by an ulp, and again when it re-reads it.
        float_ulps: 2,
        _server: db._server,
        // Namespaces: Qdrant has none.
        unsupported: lacking(open, "needs-namespaces"),
    })
}

conformance!(memory, Some(memory_fixture()));
conformance!(qdrant, qdrant_fixture());

fn pinecone_fixture() -> Option<Fixture> {
    let db = databases::pinecone()?;
    let open = db.opener();
    Some(Fixture {
        open: Box::new(open.clone()),
        flavor: data::PINECONE,
        metric: Metric::Cosine,
        float_ulps: 0,
        ints_as_floats: true,
        _server: db._server,
        // Multivectors: Pinecone has none.
        unsupported: lacking(open, "needs-multi"),
    })
}

conformance!(pinecone, pinecone_fixture());

fn pinecone_documents_fixture() -> Option<Fixture> {
    let db = databases::pinecone_documents()?;
    let open = db.opener();
    Some(Fixture {
        open: Box::new(open.clone()),
        flavor: data::PINECONE,
        metric: Metric::Cosine,
        float_ulps: 0,
        ints_as_floats: true,
        _server: db._server,
        // Multivectors: Pinecone has none.
        unsupported: lacking(open, "needs-multi"),
    })
}

// Document indexes take ASCII ids only, and the cases built on
// `data::records` begin with non-ASCII ids: those run on legacy indexes, and
// tests/integration/pinecone_documents.rs covers the rest with ASCII ids.
conformance!(
    pinecone_documents,
    pinecone_documents_fixture(),
    rich_collection,
    empty_collection,
    missing_collection_is_named,
    unsupported_feature_is_refused
);
conformance!(chroma, chroma_fixture());

fn weaviate_fixture() -> Option<Fixture> {
    let db = databases::weaviate()?;
    let open = db.opener();
    Some(Fixture {
        open: Box::new(open.clone()),
        flavor: data::WEAVIATE,
        // Weaviate keeps vectors as they are whatever the distance.
        metric: Metric::Cosine,
        float_ulps: 0,
        ints_as_floats: false,
        _server: db._server,
        // Sparse vectors: Weaviate has no user sparse vectors.
        unsupported: lacking(open, "needs-sparse"),
    })
}

conformance!(weaviate, weaviate_fixture());

fn pgvector_fixture() -> Option<Fixture> {
    let db = databases::pgvector()?;
    let open = db.opener();
    Some(Fixture {
        open: Box::new(open.clone()),
        // jsonb holds any JSON (it writes -0.0 as 0.0, which compares equal).
        flavor: data::FULL,
        // pgvector keeps vectors as they are whatever the operator class.
        metric: Metric::Cosine,
        float_ulps: 0,
        ints_as_floats: false,
        _server: db._server,
        // Multivectors: pgvector has none.
        unsupported: lacking(open, "needs-multi"),
    })
}

conformance!(pgvector, pgvector_fixture());
