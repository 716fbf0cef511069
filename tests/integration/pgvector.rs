//! The pgvector connector end to end against a real PostgreSQL + pgvector
//! server (`DATABASE_URL`), through the CLI. Tables are made and compared
//! with SQL written here, so the connector is checked by an independent
//! reader and writer.

use serde_json::json;
use tokio_postgres::{Client, NoTls};
use vecport::model::{IdKind, Record, RecordId};

use crate::conformance::read_snapshot;
use crate::support::chroma::Trip;
use crate::support::cli::{export_quietly, import_quietly, vecport};
use crate::support::data::{self, WEAVIATE};
use crate::support::{pgvector_url, server_url, unique_name};

/// A table name unique to this run, a plain SQL identifier.
fn table_name(prefix: &str) -> String {
    unique_name(prefix).replace('-', "_")
}

async fn sql() -> Option<(Client, String)> {
    let url = server_url("DATABASE_URL")?;
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some((client, pgvector_url()?))
}

/// The HNSW / IVFFlat index definitions of `table`, without index and table names.
async fn vector_indexes(client: &Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT regexp_replace(indexdef, '^CREATE INDEX \\S+ ON \\S+ ', 'CREATE INDEX ON t ') \
             FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 \
               AND (indexdef LIKE '%USING hnsw%' OR indexdef LIKE '%USING ivfflat%') ORDER BY 1",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn column_types(client: &Client, table: &str) -> Vec<(String, String)> {
    client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = ('public.' || quote_ident($1))::regclass AND a.attnum > 0 \
               AND NOT a.attisdropped ORDER BY a.attnum",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_rows_keep_vectors_metadata_and_the_hnsw_index() {
    let Some((client, base)) = sql().await else {
        return;
    };
    let (source, target) = (table_name("pg50k"), table_name("pg50k_copy"));
    let started = std::time::Instant::now();
    // 50,000 rows: a 384-d vector (with -0, a subnormal and extremes), a
    // sparse vector (NULL in every tenth row), jsonb with every JSON type
    // (NULL in every seventh row), a text column; then an HNSW index.
    client
        .batch_execute(&format!(
            "SET maintenance_work_mem = '512MB';
             CREATE TABLE {source} (id bigint PRIMARY KEY, embedding vector(384), sparse sparsevec(1000), metadata jsonb, document text);
             INSERT INTO {source}
             SELECT g,
                    ARRAY(SELECT (((g * 31 + k * 17) % 2001) / 1000.0 - 1.0 + g * 1e-9)::real FROM generate_series(1, 384) k)::vector(384),
                    CASE WHEN g % 10 = 0 THEN NULL
                         ELSE ('{{' || (g % 500 + 1) || ':' || (g % 7 + 1) * 0.5 || ',' || (g % 400 + 501) || ':-0.25}}/1000')::sparsevec END,
                    CASE WHEN g % 7 = 0 THEN NULL
                         ELSE jsonb_build_object('int', g - 25000, 'float', g::float8 / 3, 'bool', g % 2 = 0,
                                                 'text', 'row ' || g || ' ünïcödé 😀', 'nothing', NULL,
                                                 'list', jsonb_build_array(g, 'x', true, NULL, 0.5),
                                                 'object', jsonb_build_object('n', g, 'deep', jsonb_build_object('empty', '[]'::jsonb)),
                                                 'big', 9007199254740993, 'i64_min', -9223372036854775808) END,
                    CASE WHEN g % 3 = 0 THEN NULL ELSE 'document ' || g END
             FROM generate_series(1, 50000) g;
             UPDATE {source} SET embedding = (ARRAY['-0', '1e-45', '3.4028235e38', '-1.1754944e-38'] || array_fill('0.5'::text, ARRAY[380]))::real[]::vector(384) WHERE id = 1;
             CREATE INDEX ON {source} USING hnsw (embedding vector_cosine_ops) WITH (m = 24, ef_construction = 80);"
        ))
        .await
        .unwrap();
    eprintln!("seeded in {:?}", started.elapsed());

    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    export_quietly(&format!("{base}/{source}"), &snap);
    eprintln!("exported at {:?}", started.elapsed());
    let (snapshot, records) = read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, 50_000);
    assert_eq!(c.id_kind, IdKind::Uint);
    let fields: Vec<_> = c
        .vectors
        .iter()
        .map(|v| (v.field.name.as_str(), v.field.dimension, v.field.metric))
        .collect();
    assert_eq!(
        fields,
        [
            ("", Some(384), Some(vecport::model::Metric::Cosine)),
            ("sparse", Some(1000), None)
        ]
    );
    let index = c.vectors[0].field.index.as_ref().unwrap();
    assert_eq!(
        (index.kind.as_str(), index.m, index.ef_construction),
        ("hnsw", Some(24), Some(80))
    );
    // Row 1's special values arrive bit-exact in the snapshot.
    let one = records.iter().find(|r| r.id == RecordId::Uint(1)).unwrap();
    let v = one.vectors[0].as_ref().unwrap().as_dense().unwrap();
    assert_eq!(v[0].to_bits(), (-0.0f32).to_bits());
    assert_eq!(v[1].to_bits(), 1);
    assert_eq!(v[2], f32::MAX);
    drop(records);

    import_quietly(&snap, &format!("{base}/{target}"));
    eprintln!("imported at {:?}", started.elapsed());

    // Same rows, vectors bit-exact (pgvector prints the shortest exact
    // decimal of each float), same metadata and documents.
    let differing: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {source} a FULL JOIN {target} b USING (id)
                 WHERE a.id IS NULL OR b.id IS NULL
                    OR a.embedding::text IS DISTINCT FROM b.embedding::text
                    OR a.sparse::text IS DISTINCT FROM b.sparse::text
                    OR a.metadata::text IS DISTINCT FROM b.metadata::text
                    OR a.document IS DISTINCT FROM b.document"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differing, 0);
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {target}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 50_000);
    let types = column_types(&client, &target).await;
    for want in [
        ("id", "bigint"),
        ("embedding", "vector(384)"),
        ("sparse", "sparsevec(1000)"),
        ("metadata", "jsonb"),
        ("document", "text"),
    ] {
        assert!(
            types.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {types:?}"
        );
    }
    assert_eq!(
        vector_indexes(&client, &target).await,
        vector_indexes(&client, &source).await
    );
    assert_eq!(
        vector_indexes(&client, &target).await,
        [
            "CREATE INDEX ON t USING hnsw (embedding vector_cosine_ops) WITH (m='24', ef_construction='80')"
        ]
    );
    // Importing again changes nothing.
    vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("{base}/{target}"),
            "--if-exists",
            "append",
            "-q",
        ])
        .assert()
        .success();
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {target}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 50_000);
    eprintln!("done in {:?}", started.elapsed());
    client
        .batch_execute(&format!("DROP TABLE {source}; DROP TABLE {target};"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_to_pgvector_and_back_restores_ids_metadata_and_documents() {
    let Some(chroma) = Trip::seed("to-pgvector", &data::records(600, 16, 31, WEAVIATE)).await
    else {
        return;
    };
    let Some((client, base)) = sql().await else {
        return;
    };
    let original = &chroma.records;

    let tmp = tempfile::tempdir().unwrap();
    let (snap_a, snap_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let table = table_name("from_chroma");
    chroma.export(&snap_a);
    import_quietly(&snap_a, &format!("{base}/{table}"));
    // In PostgreSQL: the ids as text keys, documents in their column, an L2 index.
    let row = client
        .query_one(
            &format!("SELECT count(*), count(document), count(metadata) FROM {table}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), original.len() as i64);
    assert_eq!(
        row.get::<_, i64>(1),
        original.iter().filter(|r| r.document.is_some()).count() as i64
    );
    assert_eq!(
        row.get::<_, i64>(2),
        original.iter().filter(|r| r.metadata.is_some()).count() as i64
    );
    let indexes = vector_indexes(&client, &table).await;
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert!(
        indexes[0].contains("USING hnsw (embedding vector_l2_ops)"),
        "{indexes:?}"
    );

    chroma.assert_exported(
        &format!("{base}/{table}"),
        &snap_b,
        0,
        "Chroma → pgvector → snapshot",
    );
    let target_json = chroma
        .assert_imported_back(
            &snap_b,
            "back-from-pgvector",
            1,
            "Chroma → pgvector → Chroma",
        )
        .await;
    assert_eq!(target_json["metadata"]["origin"], json!("chroma"));
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bit_columns_are_binary_vectors_with_their_hamming_index() {
    let Some((client, base)) = sql().await else {
        return;
    };
    let (source, target) = (table_name("pgbits"), table_name("pgbits_copy"));
    // bit(70) with an HNSW Hamming index, an unindexed bit(3), a vector(3).
    client
        .batch_execute(&format!(
            "CREATE TABLE {source} (id text PRIMARY KEY, code bit(70), flags bit(3), embedding vector(3), metadata jsonb);
             INSERT INTO {source}
             SELECT 'r' || g,
                    (lpad((g * 7919)::bit(32)::text, 35, '1') || rpad((g * 31)::bit(32)::text, 35, '0'))::bit(70),
                    CASE WHEN g % 10 = 0 THEN NULL ELSE (g % 8)::bit(3) END,
                    ARRAY[g, -g, 0.5]::real[]::vector(3),
                    jsonb_build_object('g', g)
             FROM generate_series(1, 500) g;
             CREATE INDEX ON {source} USING hnsw (code bit_hamming_ops) WITH (m = 8);"
        ))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    export_quietly(&format!("{base}/{source}"), &snap);
    let (snapshot, records) = read_snapshot(&snap);
    let c = &snapshot.manifest().collections[0];
    assert_eq!(c.record_count, 500);
    let fields: Vec<_> = c
        .vectors
        .iter()
        .map(|v| {
            (
                v.field.name.as_str(),
                v.field.dimension,
                v.field.metric,
                v.field.source_datatype.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            (
                "code",
                Some(70),
                Some(vecport::model::Metric::Hamming),
                Some("bit")
            ),
            ("flags", Some(3), None, Some("bit")),
            ("", Some(3), None, None),
        ]
    );
    assert_eq!(
        c.vectors[0].field.stored_values,
        vecport::model::StoredValues::Lossy
    );
    assert_eq!(c.vectors[0].field.index.as_ref().unwrap().m, Some(8));
    // Each bit is one 0.0 or 1.0, first bit first, as PostgreSQL prints it.
    let text: String = client
        .query_one(
            &format!("SELECT code::text FROM {source} WHERE id = 'r7'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seven = records
        .iter()
        .find(|r| r.id == RecordId::String("r7".into()))
        .unwrap();
    let bits: String = seven.vectors[0]
        .as_ref()
        .unwrap()
        .as_dense()
        .unwrap()
        .iter()
        .map(|x| match *x {
            0.0 => '0',
            1.0 => '1',
            other => panic!("bit exported as {other}"),
        })
        .collect();
    assert_eq!(bits, text);
    let ten = records
        .iter()
        .find(|r| r.id == RecordId::String("r10".into()))
        .unwrap();
    assert_eq!(ten.vectors[1], None);
    drop(records);

    import_quietly(&snap, &format!("{base}/{target}"));
    let types = column_types(&client, &target).await;
    for want in [
        ("code", "bit(70)"),
        ("flags", "bit(3)"),
        ("embedding", "vector(3)"),
    ] {
        assert!(
            types.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {types:?}"
        );
    }
    assert_eq!(
        vector_indexes(&client, &target).await,
        ["CREATE INDEX ON t USING hnsw (code bit_hamming_ops) WITH (m='8')"]
    );
    let differing: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {source} a FULL JOIN {target} b USING (id)
                 WHERE a.id IS NULL OR b.id IS NULL OR a.code IS DISTINCT FROM b.code
                    OR a.flags IS DISTINCT FROM b.flags
                    OR a.embedding::text IS DISTINCT FROM b.embedding::text
                    OR a.metadata IS DISTINCT FROM b.metadata"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differing, 0);
    // Search parity runs on the first field, `code`: pgvector's `<~>` on both sides.
    let out = vecport()
        .args([
            "compare",
            &format!("{base}/{source}"),
            &format!("{base}/{target}"),
            "--queries",
            "5",
            "--k",
            "5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("search parity on vector \"code\"") && stdout.contains("exact by hamming"),
        "{stdout}"
    );
    client
        .batch_execute(&format!("DROP TABLE {source}; DROP TABLE {target};"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bit_fields_take_only_zeros_and_ones() {
    use vecport::connectors::memory::{FULL, Memory};
    use vecport::connectors::{ExistingTarget, Sink};
    use vecport::model::{CollectionSpec, Metric, StoredValues, Vector, VectorField, VectorKind};
    let Some(base) = crate::support::pgvector_url() else {
        return;
    };
    // A snapshot whose bit field holds a 0.5: refused before anything is written.
    let spec = CollectionSpec {
        name: "bits".into(),
        id_kind: Some(IdKind::String),
        vectors: vec![VectorField {
            name: "code".into(),
            kind: VectorKind::Dense,
            dimension: Some(4),
            metric: Some(Metric::Hamming),
            index: None,
            stored_values: StoredValues::Lossy,
            source_datatype: Some("bit".into()),
        }],
        raw_config: json!({}),
        collection_metadata: None,
        count_hint: None,
        notes: vec![],
        content: None,
    };
    let record = |id: &str, v: Vec<f32>| Record {
        id: RecordId::String(id.into()),
        namespace: None,
        vectors: vec![Some(Vector::Dense(v))],
        metadata: None,
        document: None,
        uri: None,
    };
    let memory = Memory::new(&unique_name("bits"), None, FULL);
    let writer = memory
        .prepare("bits", &spec, ExistingTarget::Refuse)
        .await
        .unwrap();
    writer
        .write(vec![
            record("ok", vec![0.0, 1.0, 1.0, 0.0]),
            record("half", vec![0.0, 0.5, 1.0, 0.0]),
        ])
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("snap");
    vecport::pipeline::export(
        &memory,
        &snap,
        &vecport::pipeline::ExportOptions::default(),
        &vecport::pipeline::Quiet,
    )
    .await
    .unwrap();
    let table = table_name("pgbits_bad");
    let out = vecport()
        .args([
            "import",
            snap.to_str().unwrap(),
            &format!("{base}/{table}"),
            "-q",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("\"half\"") && stderr.contains("value 0.5 at position 1"),
        "{stderr}"
    );
    let (client, _) = sql().await.unwrap();
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the refused import created table {table}");
}
