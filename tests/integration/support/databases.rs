//! Every database the tests run against, one line each in [`all`]: the
//! emulators (Qdrant, Pinecone, Weaviate) always, the real servers (Chroma,
//! PostgreSQL + pgvector) when their URL is set (always in CI, where a
//! missing server fails the run). The conformance suite and the any-to-any
//! matrix take their databases from here; what a database can store they
//! ask its connector ([`vecport::connectors::Sink::capabilities`]).

use std::sync::Arc;

use vecport::connectors::{self, Connector};

use super::server_url;

/// One database: its URL naming no collection, and the server keeping it alive.
pub struct TestDatabase {
    /// The connector's name (`qdrant`).
    pub name: &'static str,
    /// Its URL, naming no collection.
    pub url: String,
    /// Keeps an emulator alive as long as the database is used.
    pub _server: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl TestDatabase {
    /// Opens the connector on the URL naming no collection, as often as called.
    pub fn opener(&self) -> impl Fn() -> Arc<dyn Connector> + Clone + Send + Sync + 'static {
        let url = self.url.clone();
        move || connectors::open(&url, &Default::default()).unwrap()
    }

    /// The connector on the URL, naming `collection` when given.
    pub fn open(&self, collection: Option<&str>) -> Arc<dyn Connector> {
        let url = match collection {
            Some(c) => format!("{}/{c}", self.url),
            None => self.url.clone(),
        };
        connectors::open(&url, &Default::default()).unwrap()
    }
}

/// Every database that runs here, in a fixed order.
pub fn all() -> Vec<TestDatabase> {
    [qdrant(), pinecone(), weaviate(), chroma(), pgvector()]
        .into_iter()
        .flatten()
        .collect()
}

/// The Qdrant emulator.
pub fn qdrant() -> Option<TestDatabase> {
    use crate::emulators::qdrant;
    let q = qdrant::start_background(qdrant::QdrantOptions::default()).unwrap();
    Some(TestDatabase {
        name: "qdrant",
        url: format!("qdrant://{}", q.addr()),
        _server: Some(Box::new(q)),
    })
}

/// The Pinecone emulator, its stats up to date at once.
pub fn pinecone() -> Option<TestDatabase> {
    use crate::emulators::pinecone;
    let p = pinecone::start_background(pinecone::PineconeOptions::default()).unwrap();
    p.set_stats_lag_reads(0);
    Some(TestDatabase {
        name: "pinecone",
        url: format!("pinecone+http://{}", p.addr()),
        _server: Some(Box::new(p)),
    })
}

/// The Pinecone emulator, imports making document indexes (`?kind=document`).
pub fn pinecone_documents() -> Option<TestDatabase> {
    use crate::emulators::pinecone;
    let p = pinecone::start_background(pinecone::PineconeOptions::default()).unwrap();
    p.set_stats_lag_reads(0);
    Some(TestDatabase {
        name: "pinecone",
        url: format!("pinecone+http://{}?kind=document", p.addr()),
        _server: Some(Box::new(p)),
    })
}

/// The Weaviate emulator.
pub fn weaviate() -> Option<TestDatabase> {
    use crate::emulators::weaviate;
    let w = weaviate::start_background(weaviate::WeaviateOptions::default()).unwrap();
    Some(TestDatabase {
        name: "weaviate",
        url: format!("weaviate://{}", w.addr()),
        _server: Some(Box::new(w)),
    })
}

/// The Chroma server of `CHROMA_URL`.
pub fn chroma() -> Option<TestDatabase> {
    let url = server_url("CHROMA_URL")?;
    Some(TestDatabase {
        name: "chroma",
        url: format!("chroma://{}", super::chroma::host(&url)),
        _server: None,
    })
}

/// The PostgreSQL server of `DATABASE_URL`.
pub fn pgvector() -> Option<TestDatabase> {
    Some(TestDatabase {
        name: "pgvector",
        url: super::pgvector_url()?,
        _server: None,
    })
}
