//! A real Chroma server (`CHROMA_URL`) through raw HTTP: seeding and reading
//! back independently of vecport's connector, and the trip of a seeded
//! collection into another database and back.

use std::path::Path;

use serde_json::{Value, json};
use vecport::model::{IdKind, Metadata, Record, RecordId, Vector};

use super::cli::{export_quietly, import_quietly, sorted};
use super::data;
use super::{http, server_url, unique_name};

const PREFIX: &str = "/api/v2/tenants/default_tenant/databases/default_database";

/// A minimal raw Chroma client for seeding and reading back.
pub struct Raw {
    base: String,
    http: reqwest::Client,
}

impl Raw {
    pub fn new(base: &str) -> Raw {
        Raw {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{PREFIX}{path}", self.base);
        let text = http::call(&self.http, method, &url, body, path).await;
        serde_json::from_str(&text).unwrap()
    }

    pub async fn create(&self, name: &str, space: &str, metadata: Value) -> String {
        let body = json!({
            "name": name,
            "configuration": {"hnsw": {"space": space, "ef_construction": 123, "ef_search": 77, "max_neighbors": 24}},
            "metadata": metadata,
        });
        self.call(reqwest::Method::POST, "/collections", Some(body))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn collection(&self, name: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/collections/{name}"), None)
            .await
    }

    /// Upserts with embeddings as JSON numbers (not vecport's base64 path).
    pub async fn upsert(&self, id: &str, records: &[Record]) {
        for chunk in records.chunks(2000) {
            let body = json!({
                "ids": chunk.iter().map(|r| r.id.to_string()).collect::<Vec<_>>(),
                "embeddings": chunk.iter().map(|r| r.vectors[0].as_ref().unwrap().as_dense().unwrap().to_vec()).collect::<Vec<_>>(),
                "metadatas": chunk.iter().map(|r| r.metadata.clone().map_or(Value::Null, Value::Object)).collect::<Vec<_>>(),
                "documents": chunk.iter().map(|r| r.document.clone()).collect::<Vec<_>>(),
                "uris": chunk.iter().map(|r| r.uri.clone()).collect::<Vec<_>>(),
            });
            self.call(
                reqwest::Method::POST,
                &format!("/collections/{id}/upsert"),
                Some(body),
            )
            .await;
        }
    }

    /// Every record, read with offset paging.
    pub async fn read_all(&self, id: &str) -> Vec<Record> {
        let mut out = Vec::new();
        loop {
            let body = json!({"limit": 5000, "offset": out.len(), "include": ["embeddings", "metadatas", "documents", "uris"]});
            let page = self
                .call(
                    reqwest::Method::POST,
                    &format!("/collections/{id}/get"),
                    Some(body),
                )
                .await;
            let ids = page["ids"].as_array().unwrap();
            for (i, rid) in ids.iter().enumerate() {
                let emb: Vec<f32> = serde_json::from_value(page["embeddings"][i].clone()).unwrap();
                let metadata: Option<Metadata> =
                    serde_json::from_value(page["metadatas"][i].clone()).unwrap();
                out.push(Record {
                    id: RecordId::String(rid.as_str().unwrap().to_owned()),
                    namespace: None,
                    vectors: vec![Some(Vector::Dense(emb))],
                    metadata: metadata.filter(|m| !m.is_empty()),
                    document: page["documents"][i].as_str().map(str::to_owned),
                    uri: page["uris"][i].as_str().map(str::to_owned),
                });
            }
            if ids.len() < 5000 {
                return out;
            }
        }
    }
}

/// `HOST:PORT` of a Chroma server URL, as `chroma://` URLs take it.
pub fn host(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// An `l2` collection with collection metadata `{"origin": "chroma"}`,
/// seeded through [`Raw`], on its way into another database and back.
pub struct Trip {
    pub raw: Raw,
    host: String,
    /// The collection's name.
    pub name: String,
    /// Its records as Chroma gives them back, sorted by id.
    pub records: Vec<Record>,
}

impl Trip {
    /// Seeds a new collection named after `prefix` with `records`; `None`
    /// (skip) when there is no Chroma server, see [`server_url`].
    pub async fn seed(prefix: &str, records: &[Record]) -> Option<Trip> {
        let url = server_url("CHROMA_URL")?;
        let raw = Raw::new(&url);
        let name = unique_name(prefix);
        let id = raw.create(&name, "l2", json!({"origin": "chroma"})).await;
        raw.upsert(&id, records).await;
        let records = sorted(raw.read_all(&id).await);
        Some(Trip {
            raw,
            host: host(&url),
            name,
            records,
        })
    }

    /// The `chroma://` URL of collection `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("chroma://{}/{name}", self.host)
    }

    /// Exports the seeded collection into `dir` (`vecport export -q`).
    pub fn export(&self, dir: &Path) {
        export_quietly(&self.url(&self.name), dir);
    }

    /// Exports `source` into `dir` and asserts that the snapshot holds the
    /// seeded records with their string ids, metadata floats within `ulps`
    /// units in the last place; `what` names the way they came.
    pub fn assert_exported(&self, source: &str, dir: &Path, ulps: u64, what: &str) {
        export_quietly(source, dir);
        let (snapshot, back) = crate::conformance::read_snapshot(dir);
        assert_eq!(snapshot.manifest().collections[0].id_kind, IdKind::String);
        assert_eq!(
            data::first_difference_within(&self.records, &sorted(back), 0.0, ulps),
            None,
            "{what}"
        );
    }

    /// Imports snapshot `snap` into a new collection named after `prefix`,
    /// asserts that it holds the seeded records with string ids, metadata
    /// floats within `ulps` (`what` names the way they came), and returns
    /// the collection as Chroma describes it.
    pub async fn assert_imported_back(
        &self,
        snap: &Path,
        prefix: &str,
        ulps: u64,
        what: &str,
    ) -> Value {
        let target = unique_name(prefix);
        import_quietly(snap, &self.url(&target));
        let collection = self.raw.collection(&target).await;
        let restored = sorted(self.raw.read_all(collection["id"].as_str().unwrap()).await);
        assert_eq!(
            data::first_difference_within(&self.records, &restored, 0.0, ulps),
            None,
            "{what}"
        );
        assert!(restored.iter().all(|r| matches!(r.id, RecordId::String(_))));
        collection
    }
}
