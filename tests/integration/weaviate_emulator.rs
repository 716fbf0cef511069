//! The Weaviate emulator's rules, checked with plain HTTP against an
//! in-process emulator, and its faithfulness proof: the official Python
//! client (`tests/sdk/weaviate_sdk.py`, weaviate-client 3.26.7) run against
//! it.
//!
//! [`run_weaviate_sdk_scenario`] is public so that connector tests can seed
//! an emulator through the official client and compare an export with what
//! the client read back.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::emulators::Faults;
use crate::emulators::weaviate::{self, WeaviateEmulator, WeaviateOptions};
use crate::support::http::{self, Answer};

/// Runs `tests/sdk/weaviate_sdk.py` (the official weaviate-client 3.26.7)
/// against the server at `base_url` with `api_key` (if any) and returns its
/// JSON summary: `schema` (`GET /v1/schema` as the client read it),
/// `objects` (`"Article"`, `"Multi"`, `"Tenanted/alpha"`,
/// `"Tenanted/beta"` → the objects as the client read them with the cursor,
/// vectors included), `pages`, `counts`, `near` (per class / target: the
/// `query` vector and the `hits` with `_additional.id`/`distance`),
/// `batch_errors` and `bad_ids` (per refused object: the server's message
/// and its id), `gql_tenant_error`, `refusals` and `checks`. The classes are
/// left in place for an export.
///
/// `None` (skipped) when the interpreter cannot import `weaviate`, except
/// under CI (`CI=true`), where that is a failure. Panics when the scenario
/// fails.
pub async fn run_weaviate_sdk_scenario(base_url: &str, api_key: Option<&str>) -> Option<Value> {
    let mut env = vec![("WEAVIATE_URL", base_url.to_owned())];
    if let Some(key) = api_key {
        env.push(("WEAVIATE_API_KEY", key.to_owned()));
    }
    crate::support::sdk::run_scenario(crate::support::sdk::Scenario {
        script: "weaviate_sdk.py",
        imports: "weaviate",
        package: "weaviate-client==3.26.7",
        env,
        summary_env: "WEAVIATE_SDK_SUMMARY",
    })
    .await
}

async fn start() -> WeaviateEmulator {
    weaviate::start(WeaviateOptions::default())
        .await
        .expect("start the Weaviate emulator")
}

/// Weaviate's error shape on an answer.
trait ErrorShape {
    /// The message of a `{"error":[{"message"}]}` answer with `status`.
    fn error(&self, status: StatusCode) -> String;
}

impl ErrorShape for Answer {
    fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        let errors = body["error"].as_array().expect("error array");
        assert_eq!(errors.len(), 1, "{}", self.text);
        errors[0]["message"].as_str().expect("message").to_owned()
    }
}

struct Raw {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Raw {
    fn new(emulator: &WeaviateEmulator) -> Raw {
        Raw {
            base: emulator.base_url().to_owned(),
            key: None,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        http::send(request, body.map(|b| b.to_string())).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn create_class(&self, body: Value) -> Value {
        self.post("/v1/schema", body).await.ok()
    }

    async fn batch(&self, objects: Vec<Value>) -> Vec<Value> {
        let answer = self
            .post(
                "/v1/batch/objects",
                json!({"fields": ["ALL"], "objects": objects}),
            )
            .await
            .ok();
        answer.as_array().expect("batch answer is an array").clone()
    }

    async fn graphql(&self, query: &str) -> Value {
        self.post("/v1/graphql", json!({ "query": query }))
            .await
            .ok()
    }
}

fn uuid5(name: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, name.as_bytes()).to_string()
}

fn by_uuid_bytes(ids: &[String]) -> Vec<String> {
    let mut sorted = ids.to_vec();
    sorted.sort_by_key(|id| *Uuid::parse_str(id).expect("uuid").as_bytes());
    sorted
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Weaviate's distances, computed here in f64 from the f32 values.
fn distance(metric: &str, a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    match metric {
        "cosine" => {
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            1.0 - dot / (na * nb)
        }
        "dot" => -dot,
        "l2-squared" => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
        "manhattan" => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
        other => panic!("no metric {other}"),
    }
}

/// The `k` nearest (id, distance) among `(id, vector)` candidates.
fn brute_force(
    metric: &str,
    query: &[f64],
    candidates: &[(String, Vec<f64>)],
    k: usize,
) -> Vec<(String, f64)> {
    let mut scored: Vec<(String, f64)> = candidates
        .iter()
        .map(|(id, v)| (id.clone(), distance(metric, query, v)))
        .collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    scored.truncate(k);
    scored
}

fn assert_hits(hits: &Value, expected: &[(String, f64)], what: &str) {
    let hits = hits.as_array().expect("hits");
    assert_eq!(hits.len(), expected.len(), "{what}: {hits:?}");
    for (hit, (id, d)) in hits.iter().zip(expected) {
        assert_eq!(
            hit["_additional"]["id"],
            json!(id),
            "{what}: {hits:?} vs {expected:?}"
        );
        let got = hit["_additional"]["distance"].as_f64().expect("distance");
        assert!(
            (got - d).abs() <= 1e-5 * (1.0 + d.abs()),
            "{what}: distance {got} vs {d}"
        );
    }
}

#[tokio::test]
async fn weaviate_sdk_scenario_passes_against_the_emulator() {
    let emulator = weaviate::start(WeaviateOptions {
        api_key: Some("sdk-key".into()),
        ..Default::default()
    })
    .await
    .expect("start");
    let Some(summary) = run_weaviate_sdk_scenario(emulator.base_url(), Some("sdk-key")).await
    else {
        return;
    };
    assert_eq!(
        summary["checks"],
        json!([
            "ready+meta",
            "schema created",
            "refusals",
            "batch import",
            "batch errors",
            "cursor read-back",
            "aggregate counts",
            "nearVector",
            "schema read"
        ])
    );

    // What the client read with the cursor: every object, in UUID byte
    // order, exactly as the emulator holds it.
    let expected_counts = [
        ("Article", None, 96, 6),
        ("Multi", None, 40, 3),
        ("Tenanted", Some("alpha"), 33, 2),
        ("Tenanted", Some("beta"), 21, 2),
    ];
    for (class, tenant, n, pages) in expected_counts {
        let key = match tenant {
            Some(t) => format!("{class}/{t}"),
            None => class.to_owned(),
        };
        let seen = summary["objects"][&key].as_array().expect("objects");
        assert_eq!(seen.len(), n, "{key}");
        assert_eq!(summary["counts"][&key], n, "{key}");
        assert_eq!(summary["pages"][&key], pages, "{key}");
        let ids: Vec<String> = seen
            .iter()
            .map(|o| o["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(ids, by_uuid_bytes(&ids), "{key}: not in UUID byte order");
        assert_eq!(seen, &emulator.state().objects(class, tenant), "{key}");
        assert_eq!(emulator.state().object_count(class, tenant), n);
    }

    // Exact values as stored: ints and integral numbers without a
    // fraction, dates re-formatted, nulls dropped, UUIDs lowercase.
    let articles = summary["objects"]["Article"].as_array().expect("articles");
    let find = |id: &str| {
        articles
            .iter()
            .find(|o| o["id"] == id)
            .unwrap_or_else(|| panic!("no object {id}"))
            .clone()
    };
    let a0 = find(&uuid5("article-0"));
    assert_eq!(
        a0["properties"],
        json!({
            "meta": {"pages": 0, "source": "src-0"},
            "published": true,
            "publishedAt": "2024-01-10T00:30:00Z",
            "ref": uuid5("ref-0"),
            "score": 0,
            "tags": ["t0", "all"],
            "title": "Article 0: ü → 0",
            "wordCount": 100
        })
    );
    assert_eq!(a0["class"], "Article");
    assert_eq!(a0["vector"].as_array().expect("vector").len(), 8);
    assert!(a0.get("tenant").is_none());
    let a9 = find(&uuid5("article-9"));
    assert!(
        a9["properties"].get("score").is_none(),
        "null dropped: {a9}"
    );
    assert_eq!(a9["properties"]["publishedAt"], "2024-01-19T09:30:00Z");
    let auto = find(&uuid5("auto-prop"));
    assert_eq!(auto["properties"], json!({"rating": 4.5, "title": "auto"}));
    let multi = &summary["objects"]["Multi"][0];
    assert!(multi.get("vector").is_none(), "{multi}");
    assert_eq!(multi["vectors"]["text"].as_array().map(Vec::len), Some(8));
    assert_eq!(multi["vectors"]["image"].as_array().map(Vec::len), Some(4));
    assert_eq!(summary["objects"]["Tenanted/alpha"][0]["tenant"], "alpha");

    // Per-object batch errors as the client got them; none of those
    // objects was stored.
    let errors = &summary["batch_errors"];
    assert_eq!(
        errors["wrong_type"],
        "invalid integer property 'wordCount' on class 'Article': requires an integer, the given value is 'many'"
    );
    let dim = errors["wrong_dimension"].as_str().expect("message");
    assert!(
        dim.starts_with("insert to vector index: insert doc id ")
            && dim.ends_with(
                " to vector index: new node has a vector with length 3. Existing nodes have vectors with length 8: vector dimensions do not match the index dimensions"
            ),
        "{dim}"
    );
    assert_eq!(
        errors["missing_tenant"],
        "class Tenanted has multi-tenancy enabled, but request was without tenant"
    );
    assert_eq!(errors["unknown_tenant"], "tenant not found: \"gamma\"");
    let stored: Vec<Value> = ["Article", "Tenanted"]
        .iter()
        .flat_map(|c| {
            let mut all = emulator.state().objects(c, None);
            all.extend(emulator.state().objects(c, Some("alpha")));
            all.extend(emulator.state().objects(c, Some("beta")));
            all
        })
        .collect();
    for (what, id) in summary["bad_ids"].as_object().expect("bad ids") {
        assert!(
            stored.iter().all(|o| o["id"] != *id),
            "{what} ({id}) was stored"
        );
    }
    assert_eq!(
        summary["gql_tenant_error"],
        "explorer: get class: vector search: object vector search at index tenanted: class Tenanted has multi-tenancy enabled, but request was without tenant"
    );
    assert!(
        summary["refusals"]["class_name"].as_str().is_some_and(
            |m| m.contains("422") && m.contains("'Bad-Name' is not a valid class name")
        ),
        "{}",
        summary["refusals"]
    );
    assert!(
        summary["refusals"]["duplicate_class"]
            .as_str()
            .is_some_and(|m| m.contains("class name Article already exists")),
        "{}",
        summary["refusals"]
    );

    // nearVector distances against a brute force over what the client read.
    let vectors = |key: &str, target: Option<&str>| -> Vec<(String, Vec<f64>)> {
        summary["objects"][key]
            .as_array()
            .expect("objects")
            .iter()
            .filter_map(|o| {
                let v = match target {
                    Some(t) => o["vectors"].get(t)?,
                    None => o.get("vector")?,
                };
                Some((o["id"].as_str().expect("id").to_owned(), floats(v)))
            })
            .collect()
    };
    for (near_key, objects_key, target, metric, k) in [
        ("Article", "Article", None, "cosine", 7),
        ("Tenanted/alpha", "Tenanted/alpha", None, "l2-squared", 5),
        ("Multi/text", "Multi", Some("text"), "dot", 6),
        ("Multi/image", "Multi", Some("image"), "l2-squared", 6),
    ] {
        let near = &summary["near"][near_key];
        let query = floats(&near["query"]);
        let expected = brute_force(metric, &query, &vectors(objects_key, target), k);
        assert_hits(&near["hits"], &expected, near_key);
    }

    // The schema as the client read it is the emulator's, with Weaviate's
    // defaults filled in.
    let classes = summary["schema"]["classes"].as_array().expect("classes");
    let names: Vec<&str> = classes.iter().filter_map(|c| c["class"].as_str()).collect();
    assert_eq!(names, ["Article", "Multi", "Tenanted"]);
    for class in classes {
        let name = class["class"].as_str().expect("name");
        assert_eq!(Some(class.clone()), emulator.state().class_schema(name));
    }
    let article = &classes[0];
    assert_eq!(article["description"], "news articles");
    assert_eq!(article["vectorIndexType"], "hnsw");
    assert_eq!(article["vectorizer"], "none");
    assert_eq!(article["vectorIndexConfig"]["efConstruction"], 64);
    assert_eq!(article["vectorIndexConfig"]["maxConnections"], 32);
    assert_eq!(article["vectorIndexConfig"]["ef"], -1);
    assert_eq!(article["vectorIndexConfig"]["distance"], "cosine");
    let props = article["properties"].as_array().expect("properties");
    let prop = |n: &str| {
        props
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("no property {n}"))
            .clone()
    };
    assert_eq!(
        prop("tags"),
        json!({"dataType": ["text[]"], "indexFilterable": true, "indexRangeFilters": false,
            "indexSearchable": true, "name": "tags", "tokenization": "field"})
    );
    assert_eq!(
        prop("wordCount"),
        json!({"dataType": ["int"], "indexFilterable": true, "indexRangeFilters": false,
            "indexSearchable": false, "name": "wordCount"})
    );
    assert_eq!(
        prop("meta"),
        json!({"dataType": ["object"], "indexFilterable": true, "indexRangeFilters": false,
        "indexSearchable": false, "name": "meta", "nestedProperties": [
            {"dataType": ["text"], "indexFilterable": true, "indexRangeFilters": false,
                "indexSearchable": true, "name": "source", "tokenization": "word"},
            {"dataType": ["int"], "indexFilterable": true, "indexRangeFilters": false,
                "indexSearchable": false, "name": "pages"}
        ]})
    );
    let rating = prop("rating");
    assert_eq!(rating["dataType"], json!(["number"]));
    assert!(
        rating["description"]
            .as_str()
            .is_some_and(|d| d
                .starts_with("This property was generated by Weaviate's auto-schema feature on ")),
        "{rating}"
    );
    let multi = &classes[1];
    assert!(multi.get("vectorIndexType").is_none(), "{multi}");
    assert!(multi.get("vectorizer").is_none(), "{multi}");
    assert_eq!(
        multi["vectorConfig"]["text"]["vectorIndexConfig"]["distance"],
        "dot"
    );
    assert_eq!(
        multi["vectorConfig"]["image"]["vectorIndexConfig"]["distance"],
        "l2-squared"
    );
    assert_eq!(
        multi["vectorConfig"]["image"]["vectorizer"],
        json!({"none": {}})
    );
    let tenanted = &classes[2];
    assert_eq!(tenanted["multiTenancyConfig"]["enabled"], true);
    assert_eq!(tenanted["shardingConfig"]["desiredCount"], 0);
    assert_eq!(tenanted["shardingConfig"]["key"], "");
    assert_eq!(emulator.state().tenants("Tenanted"), ["alpha", "beta"]);
}

#[tokio::test]
async fn schema_defaults_and_name_rules() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    // A bare class gets exactly what Weaviate 1.39 answers for it (its
    // acceptance test `get_schema_without_client_test.go`, without modules).
    let created = raw.create_class(json!({"class": "yellowCars"})).await;
    let expected = json!({
        "class": "YellowCars",
        "invertedIndexConfig": {
            "bm25": {"b": 0.75, "k1": 1.2},
            "cleanupIntervalSeconds": 60,
            "stopwords": {"additions": null, "preset": "en", "removals": null},
            "usingBlockMaxWAND": true
        },
        "multiTenancyConfig": {"autoTenantActivation": false, "autoTenantCreation": false, "enabled": false},
        "properties": null,
        "replicationConfig": {"asyncEnabled": false, "deletionStrategy": "TimeBasedResolution", "factor": 1},
        "shardingConfig": {
            "virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1,
            "desiredVirtualCount": 128, "actualVirtualCount": 128,
            "key": "_id", "strategy": "hash", "function": "murmur3"
        },
        "vectorIndexConfig": {
            "skip": false, "cleanupIntervalSeconds": 300, "maxConnections": 32,
            "efConstruction": 128, "ef": -1, "dynamicEfMin": 100, "dynamicEfMax": 500,
            "dynamicEfFactor": 8, "vectorCacheMaxObjects": 1_000_000_000_000i64,
            "flatSearchCutoff": 40000, "distance": "cosine",
            "pq": {"enabled": false, "bitCompression": false, "segments": 0, "centroids": 256,
                "trainingLimit": 100000, "encoder": {"type": "kmeans", "distribution": "log-normal"}},
            "bq": {"enabled": false},
            "sq": {"enabled": false, "trainingLimit": 100000, "rescoreLimit": 20},
            "rq": {"enabled": false, "bits": 8, "rescoreLimit": 20},
            "filterStrategy": "acorn",
            "multivector": {"enabled": false,
                "muvera": {"enabled": false, "ksim": 4, "dprojections": 16, "repetitions": 10},
                "aggregation": "maxSim"},
            "skipDefaultQuantization": false,
            "trackDefaultQuantization": false
        },
        "vectorIndexType": "hnsw",
        "vectorizer": "none"
    });
    assert_eq!(created, expected);
    assert_eq!(raw.get("/v1/schema/YellowCars").await.ok(), expected);
    assert_eq!(
        raw.get("/v1/schema").await.ok(),
        json!({"classes": [expected]})
    );

    let refused = |class: Value| {
        let raw = &raw;
        async move {
            raw.post("/v1/schema", class)
                .await
                .error(StatusCode::UNPROCESSABLE_ENTITY)
        }
    };
    assert_eq!(
        refused(json!({"class": "Bad-Name"})).await,
        "'Bad-Name' is not a valid class name"
    );
    assert_eq!(
        refused(json!({"class": "1abc"})).await,
        "'1abc' is not a valid class name"
    );
    assert_eq!(
        refused(json!({"class": "YellowCars"})).await,
        "class name YellowCars already exists"
    );
    let with_prop = |name: &str, dt: &str| json!({"class": "P", "properties": [{"name": name, "dataType": [dt]}]});
    assert_eq!(
        refused(with_prop("_additional", "text")).await,
        "'_additional' is a reserved property name"
    );
    assert_eq!(
        refused(with_prop("Id", "text")).await,
        "'id' is a reserved property name"
    );
    assert_eq!(
        refused(with_prop("a-b", "text")).await,
        "'a-b' is not a valid property name. Property names in Weaviate are restricted to valid GraphQL names, which must be “/[_A-Za-z][_0-9A-Za-z]{0,230}/”"
    );
    assert_eq!(
        refused(with_prop("title_searchable", "text")).await,
        "'title_searchable' is not a valid property name: suffix '_searchable' is reserved for internal indices"
    );
    assert_eq!(
        refused(with_prop("title", "strin")).await,
        "property 'title': invalid dataType: [strin]: unknown primitive data type 'strin'"
    );
    assert_eq!(
        refused(json!({"class": "P", "properties": [
            {"name": "title", "dataType": ["text"]}, {"name": "Title", "dataType": ["text"]}]}))
        .await,
        "class \"P\": conflict for property \"title\": already in use or provided multiple times"
    );
    assert_eq!(
        refused(json!({"class": "P", "properties": [{"name": "o", "dataType": ["object"]}]})).await,
        "property 'o': At least one nested property is required for data type object/object[]"
    );
    assert_eq!(
        refused(json!({"class": "P", "vectorIndexConfig": {"maxConnections": 2}})).await,
        "parse vector index config: invalid hnsw config: maxConnections must be a positive integer with a minimum of 4"
    );
    assert_eq!(
        refused(json!({"class": "P", "vectorIndexType": "hnsw",
            "vectorConfig": {"a": {"vectorizer": {"none": {}}}}}))
        .await,
        "creating a class with both a class level vector index and named vectors is forbidden"
    );
    assert_eq!(emulator.state().class_names(), ["YellowCars"]);

    // string → text with whitespace tokenization, indexInverted migrated.
    let p = raw
        .create_class(json!({"class": "Legacy", "properties": [
            {"name": "s", "dataType": ["string"]},
            {"name": "n", "dataType": ["int"], "indexInverted": false}]}))
        .await;
    assert_eq!(
        p["properties"],
        json!([
            {"dataType": ["text"], "indexFilterable": true, "indexRangeFilters": false,
                "indexSearchable": true, "name": "s", "tokenization": "whitespace"},
            {"dataType": ["int"], "indexFilterable": false, "indexRangeFilters": false,
                "indexSearchable": false, "name": "n"}
        ])
    );
    let added = raw
        .post(
            "/v1/schema/Legacy/properties",
            json!({"name": "when", "dataType": ["date"]}),
        )
        .await
        .ok();
    assert_eq!(added["name"], "when");
    assert_eq!(
        raw.post(
            "/v1/schema/Legacy/properties",
            json!({"name": "When", "dataType": ["date"]})
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY),
        "class \"Legacy\": conflict for property \"when\": already in use or provided multiple times"
    );

    let missing = raw.get("/v1/schema/Nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.text, "");
    let deleted = raw.send(Method::DELETE, "/v1/schema/Nope", None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let deleted = raw.send(Method::DELETE, "/v1/schema/Legacy", None).await;
    assert_eq!(
        (deleted.status, deleted.text.as_str()),
        (StatusCode::OK, "")
    );
    assert_eq!(emulator.state().class_names(), ["YellowCars"]);
}

#[tokio::test]
async fn cursor_is_exclusive_in_uuid_order_and_offset_is_capped() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create_class(json!({"class": "Doc", "properties": [{"name": "n", "dataType": ["int"]}]}))
        .await;
    let mut ids = Vec::new();
    let mut objects = Vec::new();
    for i in 0..53 {
        let id = uuid5(&format!("doc-{i}"));
        ids.push(id.clone());
        objects.push(
            json!({"class": "Doc", "id": id, "properties": {"n": i}, "vector": [i as f32, 1.0]}),
        );
    }
    // One id given in capitals comes back lowercase.
    objects[0]["id"] = json!(ids[0].to_uppercase());
    let answer = raw.batch(objects).await;
    assert!(
        answer
            .iter()
            .all(|r| r["result"] == json!({"status": "SUCCESS"})),
        "{answer:?}"
    );
    let sorted = by_uuid_bytes(&ids);

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = raw
            .get(&format!(
                "/v1/objects?class=Doc&limit=10&after={after}&include=vector"
            ))
            .await
            .ok();
        assert_eq!(page["deprecations"], json!([]));
        let objs = page["objects"].as_array().expect("objects").clone();
        for o in &objs {
            assert!(o["vector"].is_array(), "{o}");
            seen.push(o["id"].as_str().expect("id").to_owned());
        }
        if objs.len() < 10 {
            break;
        }
        after = seen.last().expect("a last id").clone();
    }
    assert_eq!(seen, sorted);

    // after is exclusive; no vector without include=vector; default limit 10.
    let page = raw
        .get(&format!("/v1/objects?class=Doc&after={}", sorted[4]))
        .await
        .ok();
    let page_ids: Vec<&str> = page["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        page_ids,
        sorted[5..15].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(page["totalResults"], 10);
    assert!(page["objects"][0].get("vector").is_none());
    let o = &page["objects"][0];
    assert_eq!(
        o.as_object().expect("object").keys().collect::<Vec<_>>(),
        [
            "class",
            "creationTimeUnix",
            "id",
            "lastUpdateTimeUnix",
            "properties"
        ]
    );
    // Offset paging walks the same order.
    let page = raw
        .get("/v1/objects?class=Doc&offset=50&limit=10")
        .await
        .ok();
    assert_eq!(page["objects"].as_array().map(Vec::len), Some(3));
    assert_eq!(page["objects"][0]["id"], json!(sorted[50]));

    assert_eq!(
        raw.get(&format!(
            "/v1/objects?class=Doc&after={}&offset=3",
            sorted[0]
        ))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY),
        "msg:cursor api: invalid 'after' parameter code:400 err:offset cannot be set with after and limit parameters"
    );
    assert_eq!(
        raw.get("/v1/objects?class=Doc&after=nope")
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "msg:cursor api: invalid 'after' parameter code:400 err:after parameter 'nope' is not a valid uuid: invalid UUID length: 4"
    );
    assert_eq!(
        raw.get("/v1/objects?class=Doc&offset=9995&limit=10")
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "msg:offset or limit code:400 err:query maximum results exceeded: the total limit calculated from the provided offset '9995' and limit '10' exceeds the configured value for QUERY_MAXIMUM_RESULTS '10000'. If you've supplied a negative offset or limit, this may be an underflow error"
    );
    raw.get("/v1/objects?class=Doc&offset=9990&limit=10")
        .await
        .ok();
    assert_eq!(
        raw.get(&format!("/v1/objects?after={}", sorted[0]))
            .await
            .error(StatusCode::INTERNAL_SERVER_ERROR),
        "list objects: after parameter not allowed, cursor must be specific to one class, set class query param"
    );
    let unknown = raw.get("/v1/objects?class=Nope").await;
    assert_eq!(
        (unknown.status, unknown.text.as_str()),
        (StatusCode::NOT_FOUND, "")
    );
    assert_eq!(
        raw.get("/v1/objects?class=Doc&limit=0").await.ok()["objects"],
        Value::Null
    );

    // Single objects.
    let one = raw
        .get(&format!("/v1/objects/Doc/{}?include=vector", ids[0]))
        .await
        .ok();
    assert_eq!(one["id"], json!(ids[0]));
    assert_eq!(one["properties"], json!({"n": 0}));
    assert_eq!(one["vector"], json!([0.0, 1.0]));
    let gone = raw
        .send(Method::DELETE, &format!("/v1/objects/Doc/{}", ids[1]), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let again = raw.get(&format!("/v1/objects/Doc/{}", ids[1])).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(emulator.state().object_count("Doc", None), 52);
}

#[tokio::test]
async fn batch_reports_errors_per_object_in_a_200() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create_class(json!({"class": "Doc", "properties": [
        {"name": "title", "dataType": ["text"]},
        {"name": "n", "dataType": ["int"]},
        {"name": "when", "dataType": ["date"]},
        {"name": "tags", "dataType": ["text[]"]}]}))
        .await;
    let good = uuid5("good");
    let answer = raw
        .batch(vec![
            json!({"class": "Doc", "id": good, "properties": {"title": "ok", "n": 3, "when": "2024-02-03T04:05:06.500+02:00", "tags": null}, "vector": [1.0, 0.0, 0.0]}),
            json!({"class": "Doc", "id": uuid5("t"), "properties": {"title": 5}}),
            json!({"class": "Doc", "id": uuid5("n"), "properties": {"n": 1.5}}),
            json!({"class": "Doc", "id": uuid5("w"), "properties": {"when": "yesterday"}}),
            json!({"class": "Doc", "id": uuid5("a"), "properties": {"tags": ["x", 1]}}),
            json!({"class": "Doc", "id": uuid5("d"), "vector": [1.0, 2.0]}),
            json!({"class": "Doc", "id": uuid5("v"), "vectors": {"img": [1.0]}}),
            json!({"class": "Doc", "id": uuid5("tenant"), "tenant": "t1"}),
            json!({"id": uuid5("noclass")}),
        ])
        .await;
    assert_eq!(answer.len(), 9);
    assert_eq!(answer[0]["result"], json!({"status": "SUCCESS"}));
    assert_eq!(
        answer[0]["properties"],
        json!({"n": 3, "title": "ok", "when": "2024-02-03T04:05:06.5+02:00"})
    );
    let message = |i: usize| {
        let r = &answer[i]["result"];
        assert_eq!(r["status"], "FAILED", "{r}");
        r["errors"]["error"][0]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    };
    assert_eq!(
        message(1),
        "invalid text property 'title' on class 'Doc': not a string, but json.Number"
    );
    assert_eq!(
        message(2),
        "invalid integer property 'n' on class 'Doc': the JSON number '1.5' could not be converted to an int"
    );
    assert_eq!(
        message(3),
        "invalid date property 'when' on class 'Doc': requires a string with a RFC3339 formatted date, but the given value is 'yesterday'"
    );
    assert_eq!(
        message(4),
        "property 'tags' on class 'Doc': element [1]: mismatched data type - 'text' expected, got 'number'"
    );
    assert!(message(5).ends_with(
        "new node has a vector with length 2. Existing nodes have vectors with length 3: vector dimensions do not match the index dimensions"
    ));
    assert_eq!(
        message(6),
        "collection Doc does not have configuration for vector img"
    );
    assert_eq!(
        message(7),
        "class Doc has multi-tenancy disabled, but request was with tenant"
    );
    assert_eq!(message(8), "object has an empty class");
    assert_eq!(answer[1]["id"], json!(uuid5("t")));
    assert_eq!(emulator.state().object_count("Doc", None), 1);

    // Idempotent by UUID: a second write replaces the first.
    let again = raw
        .batch(vec![json!({"class": "Doc", "id": good, "properties": {"title": "new"}, "vector": [0.0, 1.0, 0.0]})])
        .await;
    assert_eq!(again[0]["result"]["status"], "SUCCESS");
    let stored = emulator.state().objects("Doc", None);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["properties"], json!({"title": "new"}));

    // A malformed id fails the whole request, as go-openapi validates it.
    let bad = raw
        .post(
            "/v1/batch/objects",
            json!({"objects": [
            {"class": "Doc", "id": uuid5("x")}, {"class": "Doc", "id": "not-a-uuid"}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.json(),
        json!({"code": 601, "message": "body.objects.1.id in body must be of type uuid: \"not-a-uuid\""})
    );

    // Auto-schema: an unknown class is created with inferred types.
    let answer = raw
        .batch(vec![json!({"class": "auto", "id": uuid5("auto"), "properties": {
            "name": "x", "count": 3, "ok": true, "at": "2024-01-01T00:00:00Z",
            "ref": uuid5("r"), "tags": ["a", "b"], "nums": [1, 2.5], "mixed": ["2024-01-01T00:00:00Z", "b"],
            "place": {"latitude": 52.5, "longitude": 13.4},
            "nested": {"inner": "v", "deep": {"k": 1}}, "nothing": null},
            "vector": [1.0, 2.0]})])
        .await;
    assert_eq!(answer[0]["result"]["status"], "SUCCESS", "{answer:?}");
    let class = emulator
        .state()
        .class_schema("Auto")
        .expect("auto-created class");
    let types: BTreeMap<String, Value> = class["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_owned(),
                p["dataType"].clone(),
            )
        })
        .collect();
    assert_eq!(
        types,
        BTreeMap::from([
            ("at".to_owned(), json!(["date"])),
            ("count".to_owned(), json!(["number"])),
            ("mixed".to_owned(), json!(["text[]"])),
            ("name".to_owned(), json!(["text"])),
            ("nested".to_owned(), json!(["object"])),
            ("nothing".to_owned(), json!(["text"])),
            ("nums".to_owned(), json!(["number[]"])),
            ("ok".to_owned(), json!(["boolean"])),
            ("place".to_owned(), json!(["geoCoordinates"])),
            ("ref".to_owned(), json!(["uuid"])),
            ("tags".to_owned(), json!(["text[]"])),
        ])
    );
    assert!(class.get("vectorIndexType").is_none(), "{class}");
    assert_eq!(
        class["vectorConfig"]["default"]["vectorizer"],
        json!({"none": {}})
    );
    assert_eq!(class["vectorConfig"]["default"]["vectorIndexType"], "hnsw");
    let stored = &emulator.state().objects("Auto", None)[0];
    assert_eq!(stored["vectors"], json!({"default": [1.0, 2.0]}));
    assert!(stored.get("vector").is_none(), "{stored}");
    assert!(stored["properties"].get("nothing").is_none(), "{stored}");
    assert_eq!(
        stored["properties"]["nested"],
        json!({"deep": {"k": 1}, "inner": "v"})
    );

    // Auto-schema off: unknown properties and classes are refused.
    emulator.set_auto_schema(false);
    let answer = raw
        .batch(vec![
            json!({"class": "Doc", "id": uuid5("u"), "properties": {"extra": 1}}),
            json!({"class": "Nope", "id": uuid5("c")}),
        ])
        .await;
    assert_eq!(
        answer[0]["result"]["errors"]["error"][0]["message"],
        "no such prop with name 'extra' found in class 'Doc' in the schema. Check your schema files for which properties in this class are available"
    );
    assert_eq!(
        answer[1]["result"]["errors"]["error"][0]["message"],
        "class 'Nope' not present in schema"
    );
    assert_eq!(
        raw.post("/v1/objects", json!({"class": "Nope", "id": uuid5("c")}))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid object: class \"Nope\" not found in schema"
    );
    assert_eq!(
        raw.post(
            "/v1/objects",
            json!({"class": "Doc", "properties": {"n": "x"}})
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid object: invalid integer property 'n' on class 'Doc': requires an integer, the given value is 'x'"
    );
}

#[tokio::test]
async fn multi_tenant_classes_need_a_tenant() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    raw.create_class(json!({"class": "Mt", "multiTenancyConfig": {"enabled": true}}))
        .await;
    let tenants = raw
        .post(
            "/v1/schema/Mt/tenants",
            json!([{"name": "t1"}, {"name": "t2", "activityStatus": "ACTIVE"}]),
        )
        .await
        .ok();
    assert_eq!(
        tenants,
        json!([{"activityStatus": "HOT", "name": "t1"}, {"activityStatus": "HOT", "name": "t2"}])
    );
    assert_eq!(
        raw.post("/v1/schema/Mt/tenants", json!([{"name": "bad name"}]))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        " 'bad name' is not a valid tenant name. should only contain alphanumeric characters (a-z, A-Z, 0-9), underscore (_), and hyphen (-), with a length between 1 and 64 characters"
    );
    assert_eq!(
        raw.get("/v1/schema/Mt/tenants").await.ok(),
        json!([{"activityStatus": "HOT", "name": "t1"}, {"activityStatus": "HOT", "name": "t2"}])
    );
    let answer = raw
        .batch(vec![
            json!({"class": "Mt", "id": uuid5("1"), "tenant": "t1", "vector": [1.0, 0.0]}),
            json!({"class": "Mt", "id": uuid5("2"), "tenant": "t2", "vector": [0.0, 1.0, 2.0]}),
        ])
        .await;
    assert!(
        answer.iter().all(|r| r["result"]["status"] == "SUCCESS"),
        "{answer:?}"
    );
    assert_eq!(
        raw.get("/v1/objects?class=Mt")
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "msg:search index mt code:422 err:class Mt has multi-tenancy enabled, but request was without tenant"
    );
    assert_eq!(
        raw.get("/v1/objects?class=Mt&tenant=t9")
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "msg:search index mt code:422 err:tenant not found: \"t9\""
    );
    let no_tenant = raw.graphql("{ Aggregate { Mt { meta { count } } } }").await;
    assert_eq!(
        no_tenant["errors"][0]["message"],
        "class Mt has multi-tenancy enabled, but request was without tenant"
    );
    assert_eq!(no_tenant["errors"][0]["path"], json!(["Aggregate", "Mt"]));
    assert_eq!(no_tenant["data"]["Aggregate"]["Mt"], Value::Null);
    let listed = raw.graphql("{ Get { Mt { _additional { id } } } }").await;
    assert_eq!(
        listed["errors"][0]["message"],
        "explorer: list class: search: object search at index mt: class Mt has multi-tenancy enabled, but request was without tenant"
    );
    assert_eq!(
        raw.post("/v1/objects", json!({"class": "Mt", "id": uuid5("3")}))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "put object: import into index mt: determine shard: class Mt has multi-tenancy enabled, but request was without tenant"
    );
    let created = raw
        .post(
            "/v1/objects",
            json!({"class": "Mt", "id": uuid5("3"), "tenant": "t1", "properties": {"a": "b"}}),
        )
        .await
        .ok();
    assert_eq!(created["tenant"], "t1");
    assert_eq!(created["properties"], json!({"a": "b"}));
    assert_eq!(
        raw.post(
            "/v1/objects",
            json!({"class": "Mt", "id": uuid5("3"), "tenant": "t1"})
        )
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY),
        format!("id '{}' already exists", uuid5("3"))
    );
    let page = raw.get("/v1/objects?class=Mt&tenant=t1").await.ok();
    assert_eq!(page["objects"][0]["tenant"], "t1");
    assert_eq!(emulator.state().object_count("Mt", Some("t2")), 1);
    let count = raw
        .graphql("{ Aggregate { Mt(tenant: \"t2\") { meta { count } } } }")
        .await;
    assert_eq!(
        count,
        json!({"data": {"Aggregate": {"Mt": [{"meta": {"count": 1}}]}}})
    );
    assert_eq!(
        raw.get("/v1/schema/Other/tenants")
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "class \"Other\": not found"
    );
    let deleted = raw
        .send(Method::DELETE, "/v1/schema/Mt/tenants", Some(json!(["t2"])))
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(emulator.state().tenants("Mt"), ["t1"]);
}

#[tokio::test]
async fn graphql_distances_per_metric_and_errors() {
    let emulator = start().await;
    let raw = Raw::new(&emulator);
    let mut rng = fastrand::Rng::with_seed(39);
    let query: Vec<f64> = (0..5).map(|_| rng.f32() as f64 * 2.0 - 1.0).collect();
    for metric in ["cosine", "dot", "l2-squared", "manhattan"] {
        let class = format!("M{}", metric.replace('-', ""));
        raw.create_class(
            json!({"class": class, "vectorIndexConfig": {"distance": metric},
            "properties": [{"name": "i", "dataType": ["int"]}]}),
        )
        .await;
        let mut candidates = Vec::new();
        let mut objects = Vec::new();
        for i in 0..40 {
            let v: Vec<f32> = (0..5).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let id = uuid5(&format!("{metric}-{i}"));
            candidates.push((id.clone(), v.iter().map(|x| *x as f64).collect()));
            objects.push(json!({"class": class, "id": id, "properties": {"i": i}, "vector": v}));
        }
        raw.batch(objects).await;
        let q: Vec<f32> = query.iter().map(|x| *x as f32).collect();
        let qf: Vec<f64> = q.iter().map(|x| *x as f64).collect();
        let answer = raw
            .graphql(&format!(
                "{{ Get {{ {class}(nearVector: {{vector: {}}}, limit: 6) {{ i _additional {{ id distance }} }} }} }}",
                serde_json::to_string(&q).expect("json")
            ))
            .await;
        assert!(answer.get("errors").is_none(), "{answer}");
        let expected = brute_force(metric, &qf, &candidates, 6);
        assert_hits(&answer["data"]["Get"][&class], &expected, metric);
    }
    // No nearVector: UUID order, default limit 10, properties as stored.
    let plain = raw
        .graphql("{ Get { Mcosine { i _additional { id } } } }")
        .await;
    assert_eq!(
        plain["data"]["Get"]["Mcosine"].as_array().map(Vec::len),
        Some(10)
    );

    let unknown = raw.graphql("{ Get { Nope { x } } }").await;
    assert_eq!(
        unknown,
        json!({"errors": [{"locations": [{"column": 9, "line": 1}],
            "message": "Cannot query field \"Nope\" on type \"GetObjectsObj\"."}]})
    );
    let bad_field = raw.graphql("{ Get { Mcosine { nope } } }").await;
    assert_eq!(
        bad_field["errors"][0]["message"],
        "Cannot query field \"nope\" on type \"Mcosine\"."
    );
    let count = raw
        .graphql("{ Aggregate { Mdot { meta { count } } } }")
        .await;
    assert_eq!(count["data"]["Aggregate"]["Mdot"][0]["meta"]["count"], 40);
}

#[tokio::test]
async fn auth_and_faults() {
    let emulator = weaviate::start(WeaviateOptions {
        api_key: Some("secret".into()),
        ..Default::default()
    })
    .await
    .expect("start");
    let mut raw = Raw::new(&emulator);
    assert_eq!(
        raw.get("/v1/.well-known/ready").await.status,
        StatusCode::OK
    );
    assert_eq!(raw.get("/v1/.well-known/live").await.status, StatusCode::OK);
    let oidc = raw.get("/v1/.well-known/openid-configuration").await;
    assert_eq!(oidc.status, StatusCode::NOT_FOUND);
    let anonymous = raw.get("/v1/schema").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.text,
        r#"{"code":401,"message": "anonymous access not enabled. Please authenticate through one of the available methods: [API-keys]" }"#
    );
    raw.key = Some("wrong".into());
    let wrong = raw.get("/v1/schema").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json(),
        json!({"code": 401, "message": "unauthorized: invalid api key"})
    );
    raw.key = Some("secret".into());
    assert_eq!(raw.get("/v1/schema").await.ok(), json!({"classes": []}));
    assert_eq!(raw.get("/v1/meta").await.ok()["version"], weaviate::VERSION);
    emulator.set_api_key(None);
    raw.key = None;
    raw.get("/v1/schema").await.ok();

    emulator
        .faults()
        .set(Faults::always_rate_limited(3).at_most(1))
        .expect("faults");
    let limited = raw.post("/v1/batch/objects", json!({"objects": []})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers["retry-after"], "3");
    assert!(
        limited.json()["error"][0]["message"].is_string(),
        "{}",
        limited.text
    );
    assert_eq!(
        raw.post("/v1/batch/objects", json!({"objects": []}))
            .await
            .ok(),
        json!([])
    );
    assert_eq!(emulator.faults().counts().rate_limited, 1);
    emulator.faults().clear();
    emulator
        .faults()
        .set(Faults::always_unavailable().at_most(1))
        .expect("faults");
    let down = raw.get("/v1/schema").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.json()["error"][0]["message"].is_string());
    raw.get("/v1/schema").await.ok();
    assert_eq!(emulator.faults().counts().unavailable, 1);
}

#[test]
fn start_background_serves_without_a_runtime() {
    let emulator = weaviate::start_background(WeaviateOptions::default()).expect("start");
    let url = format!("{}/v1/.well-known/ready", emulator.base_url());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = runtime.block_on(async { reqwest::get(&url).await.expect("get").status() });
    assert_eq!(status, StatusCode::OK);
}
