//! Reading Weaviate: the `Source` (schema, counts, search) and the cursor
//! walk of `GET /v1/objects`, decoded in one pass into records.

use super::*;

/// An object of a page of `GET /v1/objects`, its vectors already in the
/// collection's field slots.
struct WireObject {
    id: String,
    properties: Option<Map<String, Value>>,
    /// One slot per field of the collection, in its order.
    vectors: Vec<Option<Vector>>,
    created: Option<Value>,
    updated: Option<Value>,
}

/// Decodes a page (`{"objects": […], …}`) in one pass: vectors go straight
/// into `f32`s ([`JsonCursor`]), ids and properties through serde_json.
/// Vectors of fields the collection does not declare are skipped.
fn decode_objects(
    body: &[u8],
    fields: &[VectorField],
) -> std::result::Result<Vec<WireObject>, String> {
    let mut c = JsonCursor::new(body);
    let mut objects = None;
    c.object(|c, key| match &*key {
        "objects" if c.null() => {
            objects = Some(Vec::new());
            Ok(())
        }
        "objects" => {
            let page = objects.insert(Vec::new());
            c.array(|c, i| {
                page.push(decode_object(c, i, fields)?);
                Ok(())
            })
            .map(drop)
        }
        _ => c.skip(),
    })?;
    c.end()?;
    objects.ok_or_else(|| "the answer has no `objects`".to_owned())
}

fn decode_object(
    c: &mut JsonCursor<'_>,
    index: usize,
    fields: &[VectorField],
) -> std::result::Result<WireObject, String> {
    let mut id: Option<String> = None;
    let (mut properties, mut created, mut updated) = (None, None, None);
    let mut vectors: Vec<Option<Vector>> = vec![None; fields.len()];
    let slot = |name: &str| fields.iter().position(|f| f.name == name);
    c.object(|c, key| {
        let read = match &*key {
            "id" => c.value().map(|v| id = Some(v)),
            "properties" => c.value().map(|v| properties = v),
            "creationTimeUnix" => c.value().map(|v| created = v),
            "lastUpdateTimeUnix" => c.value().map(|v| updated = v),
            "vector" => match slot("") {
                Some(i) => vector_of(c, &fields[i]).map(|v| vectors[i] = v),
                None => c.skip(),
            },
            "vectors" if c.null() => Ok(()),
            "vectors" => c.object(|c, name| match slot(&name) {
                Some(i) => vector_of(c, &fields[i])
                    .map(|v| vectors[i] = v)
                    .map_err(|e| format!("vector `{name}`: {e}")),
                None => c.skip(),
            }),
            _ => c.skip(),
        };
        read.map_err(|e| match &id {
            Some(id) => format!("object {id}: {e}"),
            None => format!("object #{index} of the page: {e}"),
        })
    })?;
    Ok(WireObject {
        id: id.ok_or_else(|| format!("object #{index} of the page has no id"))?,
        properties,
        vectors,
        created,
        updated,
    })
}

/// A vector for `field`: a flat array, or an array of arrays for a
/// multivector field; `None` when null or empty.
fn vector_of(
    c: &mut JsonCursor<'_>,
    field: &VectorField,
) -> std::result::Result<Option<Vector>, String> {
    if c.null() {
        return Ok(None);
    }
    // Weaviate allows at most 65,536 dimensions; reserve no more.
    let dimension = field.dimension.map_or(0, |d| (d as usize).min(1 << 16));
    Ok(match field.kind {
        VectorKind::Multi => Some(c.f32_rows(dimension)?)
            .filter(|rows| !rows.is_empty())
            .map(Vector::Multi),
        _ => Some(c.f32_array(dimension)?)
            .filter(|v| !v.is_empty())
            .map(Vector::Dense),
    })
}

/// Integers of a `number` property as the floats they are.
fn as_floats(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_f64() => {
            if let Some(f) = n.as_f64().and_then(serde_json::Number::from_f64) {
                *n = f;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_floats),
        _ => {}
    }
}

/// An object as a neutral record.
fn record_of(
    o: WireObject,
    lift: &MappedProperties,
    tenant: Option<&str>,
) -> std::result::Result<Record, String> {
    let uuid = uuid::Uuid::try_parse(&o.id).map_err(|_| format!("id {:?} is not a UUID", o.id))?;
    let mut props = o.properties.unwrap_or_default();
    let mut take_text = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| props.shift_remove(n))
            .and_then(|v| v.as_str().map(str::to_owned))
    };
    let original = take_text(&lift.id);
    let document = take_text(&lift.document);
    let uri = take_text(&lift.uri);
    let mut metadata: Metadata = props
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, mut v)| {
            if lift.numbers.contains(&k) {
                as_floats(&mut v);
            }
            (lift.renamed.get(&k).cloned().unwrap_or(k), v)
        })
        .collect();
    if lift.timestamps {
        // Unix milliseconds, an integer (some servers send it as a string).
        let millis = |v: Option<Value>| match v {
            Some(Value::String(s)) => s.parse::<i64>().ok().map(Value::from),
            other => other.filter(Value::is_number),
        };
        for (key, v) in [
            (CREATED_KEY, millis(o.created)),
            (UPDATED_KEY, millis(o.updated)),
        ] {
            if let Some(v) = v {
                metadata.insert(key.to_owned(), v);
            }
        }
    }
    Ok(Record {
        id: record_id(uuid, original),
        namespace: tenant.filter(|t| *t != DEFAULT_TENANT).map(str::to_owned),
        vectors: o.vectors,
        metadata: (!metadata.is_empty()).then_some(metadata),
        document,
        uri,
    })
}

#[async_trait]
impl Source for Weaviate {
    async fn describe(&self) -> Result<SourceDescription> {
        let meta: wire::Meta = self.call(Method::GET, "/v1/meta", None, "meta").await?;
        Ok(SourceDescription {
            server_version: Some(meta.version),
            location: Map::new(),
        })
    }

    async fn list(&self) -> Result<Vec<CollectionSummary>> {
        let schema: wire::Schema = self
            .call(Method::GET, "/v1/schema", None, "get schema")
            .await?;
        let mut out = Vec::new();
        for class in &schema.classes {
            let name = class["class"].as_str().unwrap_or_default().to_owned();
            let dims = self.dimensions(class).await?;
            let fields = fields_of(class, &dims);
            out.push(CollectionSummary {
                dimension: fields.first().and_then(|f| f.dimension),
                metric: fields.first().and_then(|f| f.metric),
                count: Some(self.count(class).await?),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection(&self, name: &str) -> Result<CollectionSpec> {
        let class = self
            .class(&resolve_class(name))
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let name = class["class"].as_str().unwrap_or(name);
        let dims = self.dimensions(&class).await?;
        let tenants = self.tenants(&class).await?;
        let count = self.count(&class).await?;
        let mut raw = json!({"class": class});
        if tenants.iter().any(Option::is_some) {
            raw["tenants"] = json!(tenants);
        }
        Ok(CollectionSpec {
            name: name.to_owned(),
            id_kind: None,
            vectors: fields_of(&class, &dims),
            collection_metadata: class["description"]
                .as_str()
                .map(|d| Map::from_iter([("description".to_owned(), json!(d))])),
            raw_config: raw,
            count_hint: Some(count),
            notes: Vec::new(),
            content: None,
        })
    }

    async fn search(
        &self,
        spec: &CollectionSpec,
        field: &str,
        vector: &[f32],
        k: usize,
        namespace: Option<&str>,
    ) -> Result<Vec<RecordId>> {
        let class = self
            .class(&spec.name)
            .await?
            .ok_or_else(|| self.not_found(&spec.name))?;
        let lift = MappedProperties::of(&class, None);
        let mut near = format!("vector: {}", json!(vector));
        if !field.is_empty() {
            near.push_str(&format!(", targetVectors: [{}]", json!(field)));
        }
        let multi = class["multiTenancyConfig"]["enabled"].as_bool() == Some(true);
        let tenant = match (multi, namespace) {
            (true, ns) => format!(", tenant: {}", json!(ns.unwrap_or(DEFAULT_TENANT))),
            (false, _) => String::new(),
        };
        let original = lift.id.clone().unwrap_or_default();
        let query = format!(
            "{{ Get {{ {}(nearVector: {{{near}}}, limit: {k}{tenant}) {{ {original} _additional {{ id }} }} }} }}",
            spec.name
        );
        let answer = self.graphql(query, "search").await?;
        let hits = answer["Get"][spec.name.as_str()]
            .as_array()
            .ok_or_else(|| Error::Protocol {
                endpoint: self.http.base().to_owned(),
                operation: "search".into(),
                message: format!("the answer has no `data.Get.{}` list", spec.name),
            })?;
        hits.iter()
            .map(|o| {
                let uuid = o["_additional"]["id"]
                    .as_str()
                    .and_then(|s| uuid::Uuid::try_parse(s).ok())
                    .ok_or_else(|| Error::Protocol {
                        endpoint: self.http.base().to_owned(),
                        operation: "search".into(),
                        message: format!("no UUID in {o}"),
                    })?;
                let kept = o
                    .get(original.as_str())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(record_id(uuid, kept))
            })
            .collect()
    }

    fn scan<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        options: ScanOptions,
    ) -> BoxStream<'a, Result<Page>> {
        let limit = options.page_size.max(1);
        // The cursor: `{"tenant": name|null, "after": uuid|null}`.
        let start = options.start.clone();
        stream::once(async move {
            let class = match self.class(&spec.name).await {
                Ok(Some(c)) => c,
                Ok(None) => return stream::iter(vec![Err(self.not_found(&spec.name))]).boxed(),
                Err(e) => return stream::iter(vec![Err(e)]).boxed(),
            };
            let tenants = match self.tenants(&class).await {
                Ok(t) => t,
                Err(e) => return stream::iter(vec![Err(e)]).boxed(),
            };
            let lift = Arc::new(MappedProperties {
                timestamps: self.timestamps,
                ..MappedProperties::of(&class, self.document_property.as_deref())
            });
            let (first_tenant, first_after) = match &start {
                Some(c) => (
                    c["tenant"].as_str().map(str::to_owned),
                    c["after"].as_str().map(str::to_owned),
                ),
                None => (None, None),
            };
            let skip = tenants
                .iter()
                .position(|t| *t == first_tenant)
                .filter(|_| start.is_some())
                .unwrap_or(0);
            // Each tenant's last page points at the next tenant, so that a
            // scan can resume from any page's cursor.
            let following: Vec<Option<Option<String>>> = tenants
                .iter()
                .skip(1)
                .cloned()
                .map(Some)
                .chain([None])
                .collect();
            stream::iter(tenants.into_iter().zip(following).enumerate().skip(skip))
                .map(move |(i, (tenant, following))| {
                    let after = if i == skip { first_after.clone() } else { None };
                    self.scan_tenant(spec, tenant, following, after, limit, lift.clone())
                })
                .flatten()
                .boxed()
        })
        .flatten()
        .boxed()
    }
}

impl Weaviate {
    /// One cursor pass over one tenant (or a class without tenants).
    fn scan_tenant<'a>(
        &'a self,
        spec: &'a CollectionSpec,
        tenant: Option<String>,
        following: Option<Option<String>>,
        after: Option<String>,
        limit: usize,
        lift: Arc<MappedProperties>,
    ) -> BoxStream<'a, Result<Page>> {
        stream::unfold(Some(after), move |state| {
            let tenant = tenant.clone();
            let following = following.clone();
            let lift = lift.clone();
            async move {
                let after = state?;
                let path =
                    Weaviate::objects_path(&spec.name, limit, after.as_deref(), tenant.as_deref());
                let resp = match self
                    .http
                    .send(Method::GET, &path, None, "read objects", true)
                    .await
                {
                    Ok(r) if r.status.is_success() => r,
                    Ok(r) => return Some((Err(self.http.fail("read objects", &r)), None)),
                    Err(e) => return Some((Err(e), None)),
                };
                let fields = spec.vectors.clone();
                let t = tenant.clone();
                let decoded = tokio::task::spawn_blocking(move || {
                    let objects = decode_objects(&resp.body, &fields)?;
                    let last = objects.last().map(|o| o.id.clone());
                    let n = objects.len();
                    let records = objects
                        .into_iter()
                        .map(|o| record_of(o, &lift, t.as_deref()))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    Ok::<_, String>((records, last, n))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                let (records, last, n) = match decoded {
                    Ok(d) => d,
                    Err(message) => {
                        let e = Error::Protocol {
                            endpoint: self.http.base().to_owned(),
                            operation: "read objects".into(),
                            message,
                        };
                        return Some((Err(e), None));
                    }
                };
                // A page shorter than the limit is the last one.
                let next_after = last.filter(|_| n == limit);
                let next = match (&next_after, &following) {
                    (Some(a), _) => Some(json!({"tenant": tenant, "after": a})),
                    (None, Some(t)) => Some(json!({"tenant": t, "after": null})),
                    (None, None) => None,
                };
                Some((Ok(Page { records, next }), next_after.map(Some)))
            }
        })
        .boxed()
    }
}
