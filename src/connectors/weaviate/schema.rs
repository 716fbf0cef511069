//! Weaviate classes: their vector fields, the properties vecport's mapping
//! wrote, and the class a snapshot's collection becomes.

use super::*;

/// A vector field from an index type and its `vectorIndexConfig`.
pub(super) fn field_of(
    name: &str,
    index_type: &str,
    config: &Value,
    dimension: Option<u32>,
) -> VectorField {
    let mut extra = config.as_object().cloned().unwrap_or_default();
    let metric = extra
        .remove("distance")
        .and_then(|d| d.as_str().and_then(metric_of))
        .or(Some(Metric::Cosine));
    let multi = config["multivector"]["enabled"].as_bool() == Some(true);
    let take = |m: &mut Map<String, Value>, k: &str| m.remove(k).and_then(|v| v.as_u64());
    let m = take(&mut extra, "maxConnections");
    let ef_construction = take(&mut extra, "efConstruction");
    let ef_search = extra.get("ef").and_then(Value::as_u64);
    let quantization = ["pq", "bq", "sq", "rq"]
        .iter()
        .find(|q| config[**q]["enabled"].as_bool() == Some(true))
        .map(|q| json!({ *q: config[*q] }));
    VectorField {
        name: name.to_owned(),
        kind: if multi {
            VectorKind::Multi
        } else {
            VectorKind::Dense
        },
        dimension,
        metric,
        index: Some(IndexSettings {
            kind: index_type.to_owned(),
            m,
            ef_construction,
            ef_search,
            quantization,
            extra,
            ..IndexSettings::default()
        }),
        stored_values: StoredValues::Exact,
        source_datatype: None,
    }
}

/// The vector fields of a class: its named vectors (`vectorConfig`), else its
/// one default vector (field `""`).
pub(super) fn fields_of(class: &Value, dims: &BTreeMap<String, u32>) -> Vec<VectorField> {
    if let Some(named) = class["vectorConfig"].as_object().filter(|m| !m.is_empty()) {
        return named
            .iter()
            .map(|(name, c)| {
                field_of(
                    name,
                    c["vectorIndexType"].as_str().unwrap_or("hnsw"),
                    &c["vectorIndexConfig"],
                    dims.get(name).copied(),
                )
            })
            .collect();
    }
    vec![field_of(
        "",
        class["vectorIndexType"].as_str().unwrap_or("hnsw"),
        &class["vectorIndexConfig"],
        dims.get("").copied(),
    )]
}

/// Which properties vecport's mapping wrote, from the class's property
/// descriptions (and `?document_property=`).
#[derive(Debug, Clone, Default)]
pub(super) struct MappedProperties {
    pub(super) id: Option<String>,
    pub(super) document: Option<String>,
    pub(super) uri: Option<String>,
    /// Property → original metadata key.
    pub(super) renamed: BTreeMap<String, String>,
    /// `number` and `number[]` properties: Weaviate writes integral values
    /// of them without a decimal point, which would read back as integers.
    pub(super) numbers: HashSet<String>,
    /// Creation and update times go into the metadata.
    pub(super) timestamps: bool,
}

impl MappedProperties {
    pub(super) fn of(class: &Value, document_property: Option<&str>) -> MappedProperties {
        let mut lift = MappedProperties {
            document: document_property.map(str::to_owned),
            ..MappedProperties::default()
        };
        for p in class["properties"].as_array().into_iter().flatten() {
            let Some(name) = p["name"].as_str() else {
                continue;
            };
            if matches!(p["dataType"][0].as_str(), Some("number" | "number[]")) {
                lift.numbers.insert(name.to_owned());
            }
            let Some(desc) = p["description"].as_str() else {
                continue;
            };
            match desc {
                ID_MARK => lift.id = Some(name.to_owned()),
                URI_MARK => lift.uri = Some(name.to_owned()),
                DOCUMENT_MARK if lift.document.is_none() => lift.document = Some(name.to_owned()),
                d => {
                    if let Some(original) = d.strip_prefix(KEY_MARK) {
                        lift.renamed.insert(name.to_owned(), original.to_owned());
                    }
                }
            }
        }
        lift
    }
}

/// The Weaviate data type for metadata values of the types seen, when one
/// type fits them all.
pub(super) fn data_type(types: &[String]) -> Option<&'static str> {
    let seen: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "null")
        .collect();
    let all = |ok: &[&str]| !seen.is_empty() && seen.iter().all(|t| ok.contains(t));
    if all(&["string"]) {
        Some("text")
    } else if all(&["int"]) {
        Some("int")
    } else if all(&["int", "float"]) {
        Some("number")
    } else if all(&["bool"]) {
        Some("boolean")
    } else if all(&["array<string>", "array<>"]) && seen.contains(&"array<string>") {
        Some("text[]")
    } else if all(&["array<int>", "array<>"]) && seen.contains(&"array<int>") {
        Some("int[]")
    } else if all(&["array<float>", "array<float|int>", "array<int>", "array<>"])
        && seen.iter().any(|t| t.contains("float"))
    {
        Some("number[]")
    } else if all(&["array<bool>", "array<>"]) && seen.contains(&"array<bool>") {
        Some("boolean[]")
    } else {
        None
    }
}

/// The class definition for `spec` from another database.
pub(super) fn class_body(class: &str, spec: &CollectionSpec, document_property: &str) -> Value {
    let config = |f: &VectorField| {
        let mut c = Map::new();
        c.insert(
            "distance".into(),
            json!(distance_of(f.metric.unwrap_or(Metric::Cosine))),
        );
        if let Some(ix) = f.index.as_ref().filter(|ix| ix.kind == "hnsw") {
            if let Some(m) = ix.m {
                c.insert("maxConnections".into(), json!(m));
            }
            if let Some(ef) = ix.ef_construction {
                c.insert("efConstruction".into(), json!(ef));
            }
            if let Some(ef) = ix.ef_search {
                c.insert("ef".into(), json!(ef));
            }
        }
        if f.kind == VectorKind::Multi {
            c.insert("multivector".into(), json!({"enabled": true}));
        }
        Value::Object(c)
    };
    let mut body = json!({"class": class, "vectorizer": "none"});
    match spec.vectors.as_slice() {
        [only] if only.name.is_empty() => {
            body["vectorIndexType"] = json!("hnsw");
            body["vectorIndexConfig"] = config(only);
        }
        fields => {
            let named: Map<String, Value> = fields
                .iter()
                .map(|f| {
                    (
                        vector_name(&f.name),
                        json!({"vectorizer": {"none": {}}, "vectorIndexType": "hnsw", "vectorIndexConfig": config(f)}),
                    )
                })
                .collect();
            body["vectorConfig"] = Value::Object(named);
        }
    }
    let content = spec.content.clone().unwrap_or_default();
    let mut properties = Vec::new();
    if spec.id_kind != Some(IdKind::Uuid) {
        properties.push(json!({"name": ORIGINAL_ID_PROPERTY, "dataType": ["text"], "description": ID_MARK, "indexSearchable": false}));
    }
    if content.documents || spec.content.is_none() {
        properties.push(
            json!({"name": document_property, "dataType": ["text"], "description": DOCUMENT_MARK}),
        );
    }
    if content.uris {
        properties.push(json!({"name": URI_PROPERTY, "dataType": ["text"], "description": URI_MARK, "indexSearchable": false}));
    }
    // Keys arrive here as they will be written, renames done.
    for (name, types) in &content.metadata_types {
        let Some(dt) = data_type(types) else { continue };
        if name == document_property || reserved_key(name).is_some() {
            continue;
        }
        let mut p = json!({"name": name, "dataType": [dt]});
        if let Some(original) = content.renamed_keys.get(name) {
            p["description"] = json!(format!("{KEY_MARK}{original}"));
        }
        properties.push(p);
    }
    body["properties"] = Value::Array(properties);
    let multi = !content.namespaces.is_empty();
    body["multiTenancyConfig"] = json!({"enabled": multi});
    body
}
