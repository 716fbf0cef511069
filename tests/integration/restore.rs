//! Same-engine restores: a collection exported, imported into a new
//! collection of the same database and exported again gives two snapshots
//! equal in records and in configuration. The only differences allowed are
//! listed with each test: what a new collection must have of its own (its
//! name, and names or ids derived from it).

use std::path::Path;

use serde_json::Value;
use tokio_postgres::NoTls;
use vecport::model::Record;

use crate::conformance::read_snapshot;
use crate::support::cli::{export_quietly, import_quietly, vecport};
use crate::support::{pgvector_url, server_url, unique_name};

/// The records of a one-collection snapshot, by id.
fn records_by_id(dir: &Path) -> Vec<Record> {
    let (_, mut records) = read_snapshot(dir);
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

/// `v` as JSON text with the keys of every object sorted.
fn canonical(v: &Option<Value>) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&o[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&v.as_ref().map(sorted)).unwrap()
}

/// The collection's manifest entry as JSON, with `name` replaced by
/// `placeholder` everywhere in it (names derived from the collection's name
/// differ by that alone) and the fields every new collection has of its own
/// removed: the name and directory, and each part's hash and size (a part
/// embeds the collection's name). Nothing else may differ.
fn configuration(dir: &Path, name: &str) -> Value {
    let (snapshot, _) = read_snapshot(dir);
    let mut c = serde_json::to_value(&snapshot.manifest().collections[0]).unwrap();
    let o = c.as_object_mut().unwrap();
    o.remove("name");
    o.remove("directory");
    // A part embeds its collection's name (FORMAT.md §4): its hash and size
    // differ with it. The records are compared one by one instead.
    for part in o["parts"].as_array_mut().unwrap() {
        let part = part.as_object_mut().unwrap();
        part.remove("blake3");
        part.remove("bytes");
    }
    let text = serde_json::to_string(&c)
        .unwrap()
        .replace(name, "COLLECTION");
    serde_json::from_str(&text).unwrap()
}

/// Export `source` (collection `a`), import it as `b`, export `b`: the two
/// snapshots hold the same records, exactly (numbers as their decimal text),
/// `vecport compare` finds no difference, and the configurations are equal
/// (see [`configuration`] for the only exceptions).
fn same_engine_round_trip(base: &str, a: &str, b: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    export_quietly(&format!("{base}/{a}"), &first);
    import_quietly(&first, &format!("{base}/{b}"));
    export_quietly(&format!("{base}/{b}"), &second);
    let (x, y) = (records_by_id(&first), records_by_id(&second));
    assert_eq!(x.len(), y.len());
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p, q, "record {} differs", p.id);
        // Numbers compare as their text, so every digit counts (key order
        // aside: Chroma and jsonb keep their own).
        assert_eq!(
            canonical(&p.metadata.clone().map(Value::Object)),
            canonical(&q.metadata.clone().map(Value::Object)),
            "record {}",
            p.id
        );
    }
    vecport()
        .args(["compare"])
        .arg(&first)
        .arg(&second)
        .args(["--float-ulps", "0"])
        .assert()
        .success();
    assert_eq!(configuration(&first, a), configuration(&second, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_table_comes_back_as_it_was() {
    let (Some(sql_url), Some(base)) = (server_url("DATABASE_URL"), pgvector_url()) else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&sql_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let a = unique_name("restore").replace('-', "_");
    let b = format!("{a}_copy");
    client
        .batch_execute(&format!(
            "CREATE TABLE {a} (
                 id bigint PRIMARY KEY,
                 embedding vector(4) NOT NULL,
                 sv sparsevec(1000),
                 meta jsonb,
                 body text,
                 created timestamptz NOT NULL DEFAULT now(),
                 price numeric(30,20) CHECK (price >= 0),
                 amount numeric,
                 tags text[],
                 counts int[],
                 active boolean,
                 code varchar(12) DEFAULT 'none'
             );
             COMMENT ON TABLE {a} IS 'items, restored as they were';
             INSERT INTO {a}
             SELECT g,
                    ARRAY[g, g * 0.5, -g, 0.25]::real[]::vector(4),
                    CASE WHEN g % 3 = 0 THEN NULL ELSE ('{{' || g || ':1.5}}/1000')::sparsevec END,
                    CASE WHEN g % 5 = 0 THEN NULL
                         ELSE jsonb_build_object('third', 0.33333333333333333333 * g,
                                                 'huge', 18446744073709551616 + g,
                                                 'f', g::float8 / 7,
                                                 'nested', jsonb_build_object('n', 1.0000000000000000000 + g / 1e19)) END,
                    CASE WHEN g % 4 = 0 THEN NULL ELSE 'body ' || g END,
                    timestamptz '2024-02-29 12:34:56.789012+00' + g * interval '1 hour',
                    (g / 3.0)::numeric(30,20),
                    12345678901234567890.123456789 * g,
                    CASE WHEN g % 2 = 0 THEN ARRAY['a', 'b''c', 'ü', NULL] ELSE ARRAY[]::text[] END,
                    ARRAY[g, -g],
                    CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 = 0 END,
                    'c' || g
             FROM generate_series(1, 300) g;
             CREATE INDEX {a}_created ON {a} (created DESC);
             CREATE UNIQUE INDEX {a}_body ON {a} (body) WHERE body IS NOT NULL;
             CREATE INDEX ON {a} USING hnsw (embedding vector_cosine_ops) WITH (m = 8);"
        ))
        .await
        .unwrap();

    // Allowed differences: the table's name, in `raw_config.table` and in
    // the index and constraint names derived from it (by the name
    // substitution of `configuration`).
    same_engine_round_trip(&base, &a, &b);

    // The tables themselves: every row the same as text (jsonb numbers with
    // all their digits, timestamps, numerics, arrays), the same columns,
    // NOT NULLs, defaults, indexes and comment.
    let differing: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {a} x FULL JOIN {b} y USING (id)
                 WHERE x.id IS NULL OR y.id IS NULL
                    OR row(x.*)::text IS DISTINCT FROM row(y.*)::text"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differing, 0);
    let digits: String = client
        .query_one(&format!("SELECT meta->>'third' FROM {b} WHERE id = 1"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(digits, "0.33333333333333333333");
    let catalog = |table: String| {
        let client = &client;
        async move {
            let columns: Vec<String> = client
                .query(
                    "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull \
                            || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') \
                     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                     WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    &[&table],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let indexes: Vec<String> = client
                .query(
                    "SELECT replace(indexdef, $1, 'T') FROM pg_indexes WHERE tablename = $1 ORDER BY 1",
                    &[&table],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let constraints: Vec<String> = client
                .query(
                    "SELECT contype::text || ' ' || replace(conname::text, $1, 'T') || ' ' || pg_get_constraintdef(oid) \
                     FROM pg_constraint WHERE conrelid = $1::text::regclass ORDER BY 1",
                    &[&table],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let comment: Option<String> = client
                .query_one(
                    "SELECT obj_description($1::text::regclass, 'pg_class')",
                    &[&table],
                )
                .await
                .unwrap()
                .get(0);
            (columns, indexes, constraints, comment)
        }
    };
    let (x, y) = (catalog(a.clone()).await, catalog(b.clone()).await);
    assert_eq!(x, y);
    assert!(
        x.1.len() == 4,
        "primary key, btree, unique and hnsw indexes: {:?}",
        x.1
    );
    assert_eq!(x.3.as_deref(), Some("items, restored as they were"));
    client
        .batch_execute(&format!("DROP TABLE {a}; DROP TABLE {b};"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pgvector_numeric_digits_survive_a_round_trip() {
    let (Some(sql_url), Some(base)) = (server_url("DATABASE_URL"), pgvector_url()) else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&sql_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let a = unique_name("digits").replace('-', "_");
    let b = format!("{a}_copy");
    client
        .batch_execute(&format!(
            "CREATE TABLE {a} (id text PRIMARY KEY, embedding vector(2), metadata jsonb);
             INSERT INTO {a} SELECT 'r' || g, '[1,2]',
                 jsonb_build_object('x', round(g::numeric / 3, 20), 'y', 98765432109876543210.5 + g)
             FROM generate_series(1, 1000) g;"
        ))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    export_quietly(&format!("{base}/{a}"), &tmp.path().join("s"));
    import_quietly(&tmp.path().join("s"), &format!("{base}/{b}"));
    let differing: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM {a} x FULL JOIN {b} y USING (id)
                 WHERE x.metadata::text IS DISTINCT FROM y.metadata::text"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differing, 0, "every digit of every numeric kept");
    let one: String = client
        .query_one(
            &format!("SELECT metadata->>'x' FROM {b} WHERE id = 'r1'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, "0.33333333333333333333", "20 significant digits");
    client
        .batch_execute(&format!("DROP TABLE {a}; DROP TABLE {b};"))
        .await
        .unwrap();
}

/// Sends `body` to `url` and fails the test unless the answer is a success.
async fn call(method: reqwest::Method, url: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .request(method, url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn qdrant_collection_comes_back_as_it_was() {
    use crate::emulators::qdrant::{self, QdrantOptions};
    use reqwest::Method;
    use serde_json::json;
    let e = qdrant::start(QdrantOptions::default()).await.unwrap();
    let base = format!("http://{}", e.addr());
    // Every setting away from its default: per-vector HNSW, quantization and
    // storage, a sparse vector with IDF, collection HNSW, optimizers,
    // quantization, sharding, payload storage, metadata, payload indexes
    // with parameters.
    call(
        Method::PUT,
        &format!("{base}/collections/restore_a"),
        json!({
            "vectors": {
                "text": {"size": 4, "distance": "Dot", "on_disk": true,
                         "hnsw_config": {"m": 8, "ef_construct": 50},
                         "quantization_config": {"scalar": {"type": "int8", "quantile": 0.95, "always_ram": true}}},
                "image": {"size": 3, "distance": "Euclid"}
            },
            "sparse_vectors": {"keywords": {"modifier": "idf"}},
            "hnsw_config": {"m": 20, "ef_construct": 111, "full_scan_threshold": 5000},
            "optimizers_config": {"indexing_threshold": 12345, "default_segment_number": 3},
            "quantization_config": {"binary": {"always_ram": false}},
            "shard_number": 2,
            "on_disk_payload": false,
            "metadata": {"owner": "search team", "version": 3}
        }),
    )
    .await;
    for index in [
        json!({"field_name": "city", "field_schema": {"type": "keyword", "is_tenant": true}}),
        json!({"field_name": "n", "field_schema": "integer"}),
        json!({"field_name": "body", "field_schema": {"type": "text", "tokenizer": "word", "lowercase": true}}),
    ] {
        call(
            Method::PUT,
            &format!("{base}/collections/restore_a/index?wait=true"),
            index,
        )
        .await;
    }
    let points: Vec<Value> = (1..=60u64)
        .map(|i| {
            let city = ["Lyon", "Oslo"][i as usize % 2];
            json!({
                "id": i,
                "vector": {
                    "text": [i as f32 * 0.5, -1.0, 0.25, 3.0],
                    "image": [1.0, i as f32, -0.125],
                    "keywords": {"indices": [i as u32, 1000 + i as u32], "values": [0.5, 1.5]}
                },
                "payload": {"city": city, "n": i * 1_000_000_007,
                            "f": i as f64 / 7.0, "body": format!("text {i}"),
                            "nested": {"list": [1, 2.5, "x", null]}}
            })
        })
        .collect();
    call(
        Method::PUT,
        &format!("{base}/collections/restore_a/points?wait=true"),
        json!({ "points": points }),
    )
    .await;
    // No differences allowed but the name.
    same_engine_round_trip(&format!("qdrant://{}", e.addr()), "restore_a", "restore_b");
}

#[tokio::test(flavor = "multi_thread")]
async fn weaviate_class_comes_back_as_it_was() {
    use crate::emulators::weaviate::{self, WeaviateOptions};
    use reqwest::Method;
    use serde_json::json;
    let e = weaviate::start(WeaviateOptions::default()).await.unwrap();
    let base = format!("http://{}", e.addr());
    call(
        Method::POST,
        &format!("{base}/v1/schema"),
        json!({
            "class": "RestoreSource",
            "description": "articles",
            "vectorizer": "none",
            "vectorIndexType": "hnsw",
            "vectorIndexConfig": {"distance": "dot", "efConstruction": 64, "maxConnections": 12, "ef": 90,
                                  "flatSearchCutoff": 20000, "cleanupIntervalSeconds": 120},
            "invertedIndexConfig": {"bm25": {"b": 0.7, "k1": 1.1}, "indexTimestamps": true,
                                    "indexNullState": true, "indexPropertyLength": true},
            "replicationConfig": {"factor": 1},
            "properties": [
                {"name": "title", "dataType": ["text"], "tokenization": "field", "indexSearchable": false},
                {"name": "year", "dataType": ["int"], "indexFilterable": true},
                {"name": "score", "dataType": ["number"]},
                {"name": "tags", "dataType": ["text[]"], "tokenization": "word"},
                {"name": "published", "dataType": ["date"]},
                {"name": "meta", "dataType": ["object"],
                 "nestedProperties": [{"name": "source", "dataType": ["text"]}]}
            ]
        }),
    )
    .await;
    let objects: Vec<Value> = (1..=40u32)
        .map(|i| {
            json!({
                "class": "RestoreSource",
                "id": format!("00000000-0000-4000-8000-{:012x}", i),
                "vector": [i as f32, 0.5, -0.25],
                "properties": {"title": format!("title {i}"), "year": 1990 + i, "score": i as f64 / 8.0,
                               "tags": ["a", "b"], "published": "2024-01-02T03:04:05Z",
                               "meta": {"source": "wire"}}
            })
        })
        .collect();
    call(
        Method::POST,
        &format!("{base}/v1/batch/objects"),
        json!({ "objects": objects }),
    )
    .await;
    // No differences allowed but the class name.
    same_engine_round_trip(
        &format!("weaviate://{}", e.addr()),
        "RestoreSource",
        "RestoreTarget",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chroma_collection_comes_back_as_it_was() {
    use crate::support::chroma::{Raw, host};
    use crate::support::cli::plain_records;
    use serde_json::json;
    let Some(url) = server_url("CHROMA_URL") else {
        return;
    };
    let raw = Raw::new(&url);
    let a = unique_name("restore");
    let b = format!("{a}-copy");
    let id = raw
        .create(&a, "ip", json!({"owner": "search", "version": 2}))
        .await;
    raw.upsert(&id, &plain_records(120, 8, 5)).await;
    // No differences allowed but the name.
    same_engine_round_trip(&format!("chroma://{}", host(&url)), &a, &b);
}

#[tokio::test(flavor = "multi_thread")]
async fn milvus_collection_comes_back_as_it_was() {
    let Some(url) = server_url("MILVUS_URL").map(|u| u.trim_end_matches('/').to_owned()) else {
        return;
    };
    let a = unique_name("restore").replace('-', "_");
    let b = format!("{a}_copy");
    if crate::milvus::sdk(&url, "seed", &a, 300).is_none() {
        return;
    }
    // No differences allowed but the name: schema (typed fields, dynamic
    // field), index parameters, consistency level, shards, partitions.
    same_engine_round_trip(&url, &a, &b);
}
