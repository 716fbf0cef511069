//! Writing Weaviate: the `Sink` (class creation, checks) and batches of
//! `POST /v1/batch/objects`, every object's result checked.

use super::*;

#[async_trait]
impl Sink for Weaviate {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_dense_fields: usize::MAX,
            sparse: false,
            multivector: false,
            named_vectors: true,
            namespaces: true,
            documents: true,
            uris: true,
            metrics: &[
                Metric::Cosine,
                Metric::Dot,
                Metric::L2,
                Metric::Manhattan,
                Metric::Hamming,
            ],
            id_kinds: &[IdKind::Uuid],
            metadata: METADATA_RULES,
        }
    }

    fn notes(&self, spec: &CollectionSpec) -> Vec<String> {
        let mut notes = Vec::new();
        if spec.raw_config.get("class").is_none() {
            let keeps = IndexCounterparts {
                m: true,
                ef_construction: true,
                ef_search: true,
                lists: false,
                quantization: false,
            };
            notes.extend(unkept_settings("weaviate", spec, keeps));
        }
        notes
    }

    fn id_form(&self, _spec: &CollectionSpec, id: &RecordId) -> Option<IdForm> {
        match id {
            RecordId::Uuid(_) => None,
            RecordId::Uint(_) => Some(IdForm::Kept(
                "weaviate ids are UUIDs: an unsigned integer id becomes the UUID of the same 128-bit value and is kept in the `vecport_id` property, which an export restores it from",
            )),
            RecordId::String(_) => Some(IdForm::Kept(
                "weaviate ids are UUIDs: a string id is kept in the `vecport_id` property, which an export restores it from, and the object id is the string when it is a UUID, else its UUIDv5",
            )),
        }
    }

    fn check(&self, spec: &CollectionSpec, record: &Record) -> Result<()> {
        let id = record.id.to_string();
        let bad = |what: String| Err(Error::InvalidData(format!("record {id:?}: {what}")));
        crate::connectors::check_request_size("weaviate", record, MAX_BATCH_BYTES)?;
        if let Some(ns) = &record.namespace
            && !valid_tenant(ns)
        {
            return bad(format!(
                "namespace {ns:?} is not a Weaviate tenant name (1–64 of A-Z a-z 0-9 _ -)"
            ));
        }
        for (f, v) in spec.vectors.iter().zip(&record.vectors) {
            let Some(Vector::Dense(d)) = v else { continue };
            if let Some(why) = crate::connectors::wrong_dimension(f, d) {
                return bad(why);
            }
            if d.iter().any(|x| !x.is_finite()) {
                return bad(format!("vector {:?} has NaN or infinite values", f.name));
            }
        }
        let document_property = self
            .document_property
            .as_deref()
            .unwrap_or(DOCUMENT_PROPERTY);
        if record.document.is_some()
            && record
                .metadata
                .as_ref()
                .is_some_and(|m| m.contains_key(document_property))
        {
            return bad(format!(
                "has a document and a metadata key `{document_property}`, the property documents go to; choose another with ?document_property="
            ));
        }
        Ok(())
    }

    async fn prepare(
        &self,
        target: &str,
        spec: &CollectionSpec,
        existing: ExistingTarget,
    ) -> Result<Arc<dyn CollectionWriter>> {
        let class = resolve_class(target);
        let found = self.class(&class).await?;
        let document_property = self
            .document_property
            .clone()
            .unwrap_or_else(|| DOCUMENT_PROPERTY.to_owned());
        let created = !(found.is_some() && existing == ExistingTarget::Append);
        let definition = match (&found, existing) {
            (Some(_), ExistingTarget::Refuse) => {
                let named = if class == target {
                    format!("class `{class}`")
                } else {
                    format!("class `{class}` (Weaviate's name for `{target}`)")
                };
                return Err(crate::connectors::already_exists(&named, self.http.base()));
            }
            (Some(c), ExistingTarget::Append) => {
                let dims = self.dimensions(c).await?;
                crate::connectors::check_append(
                    &format!("class `{class}` on {}", self.http.base()),
                    &fields_of(c, &dims),
                    &spec.vectors,
                )?;
                c.clone()
            }
            (found, _) => {
                if found.is_some() {
                    self.call_if_found(
                        Method::DELETE,
                        &format!("/v1/schema/{}", segment(&class)),
                        None,
                        "delete class",
                    )
                    .await?;
                }
                let body = match spec.raw_config.get("class").filter(|c| c.is_object()) {
                    // Weaviate → Weaviate: the same definition under the new name.
                    Some(source) => {
                        let mut body = source.clone();
                        body["class"] = json!(class);
                        if spec
                            .content
                            .as_ref()
                            .is_some_and(|c| !c.namespaces.is_empty())
                        {
                            body["multiTenancyConfig"]["enabled"] = json!(true);
                        }
                        // A multi-tenant class reports a sharding config of
                        // zeros but refuses one on creation.
                        if body["multiTenancyConfig"]["enabled"].as_bool() == Some(true)
                            && let Some(o) = body.as_object_mut()
                        {
                            o.remove("shardingConfig");
                        }
                        body
                    }
                    None => class_body(&class, spec, &document_property),
                };
                let _: Value = self
                    .call(Method::POST, "/v1/schema", Some(body), "create class")
                    .await?;
                self.class(&class)
                    .await?
                    .ok_or_else(|| self.not_found(&class))?
            }
        };
        let multi = definition["multiTenancyConfig"]["enabled"].as_bool() == Some(true);
        let tenants: HashSet<String> = self
            .tenants(&definition)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let lift = MappedProperties::of(&definition, Some(&document_property));
        let mut notes = Vec::new();
        if class != target {
            notes.push(format!(
                "`{target}` is not a Weaviate class name: imported as class `{class}`"
            ));
        }
        Ok(Arc::new(WeaviateWriter {
            weaviate: Weaviate {
                http: self.http.clone(),
                class: None,
                document_property: self.document_property.clone(),
                timestamps: false,
            },
            class,
            created,
            fields: spec.vectors.clone(),
            multi,
            lift,
            tenants: tokio::sync::Mutex::new(tenants),
            notes,
        }))
    }
}

/// Whether `name` is a Weaviate tenant name.
pub(super) fn valid_tenant(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

struct WeaviateWriter {
    weaviate: Weaviate,
    class: String,
    /// Whether `prepare` created the class (so `discard` may delete it).
    created: bool,
    fields: Vec<VectorField>,
    multi: bool,
    lift: MappedProperties,
    /// Tenants that exist; new namespaces are created before their objects.
    tenants: tokio::sync::Mutex<HashSet<String>>,
    notes: Vec<String>,
}

impl WeaviateWriter {
    /// The tenant of a record in this class.
    fn tenant_of<'r>(&self, r: &'r Record) -> Option<&'r str> {
        self.multi
            .then(|| r.namespace.as_deref().unwrap_or(DEFAULT_TENANT))
    }

    /// A record as a batch object.
    fn object_of(&self, r: Record) -> Value {
        let tenant = self.tenant_of(&r).map(str::to_owned);
        let (uuid, original) = object_id(&r.id);
        let mut props = r.metadata.unwrap_or_default();
        let property = |name: &Option<String>, fallback: &str| {
            name.clone().unwrap_or_else(|| fallback.to_owned())
        };
        if let Some(o) = original {
            props.insert(property(&self.lift.id, ORIGINAL_ID_PROPERTY), json!(o));
        }
        if let Some(d) = r.document {
            props.insert(property(&self.lift.document, DOCUMENT_PROPERTY), json!(d));
        }
        if let Some(u) = r.uri {
            props.insert(property(&self.lift.uri, URI_PROPERTY), json!(u));
        }
        let mut o =
            json!({"class": self.class, "id": uuid.hyphenated().to_string(), "properties": props});
        let unnamed = self.fields.len() == 1 && self.fields[0].name.is_empty();
        let as_json = |v: Vector| match v {
            Vector::Dense(d) => json!(d),
            Vector::Multi(m) => json!(m),
            Vector::Sparse(_) => Value::Null,
        };
        if unnamed {
            if let Some(v) = r.vectors.into_iter().next().flatten() {
                o["vector"] = as_json(v);
            }
        } else {
            let named: Map<String, Value> = self
                .fields
                .iter()
                .zip(r.vectors)
                .filter_map(|(f, v)| v.map(|v| (vector_name(&f.name), as_json(v))))
                .collect();
            o["vectors"] = Value::Object(named);
        }
        if let Some(t) = tenant {
            o["tenant"] = json!(t);
        }
        o
    }

    /// Creates the tenants of `records` that do not exist yet.
    async fn ensure_tenants(&self, records: &[Record]) -> Result<()> {
        if !self.multi {
            return Ok(());
        }
        let mut known = self.tenants.lock().await;
        let mut missing: Vec<&str> = records
            .iter()
            .filter_map(|r| self.tenant_of(r))
            .filter(|t| !known.contains(*t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let body: Vec<Value> = missing.iter().map(|t| json!({"name": t})).collect();
        let _: Value = self
            .weaviate
            .call(
                Method::POST,
                &format!("/v1/schema/{}/tenants", segment(&self.class)),
                Some(Value::Array(body)),
                "create tenants",
            )
            .await?;
        known.extend(missing.into_iter().map(str::to_owned));
        Ok(())
    }
}

/// The failed objects of a batch answer: `(id, message)`.
pub(super) fn batch_failures(answer: &[wire::BatchObject]) -> Vec<(String, String)> {
    answer
        .iter()
        .filter_map(|o| Some((o.id.clone(), o.failure()?)))
        .collect()
}

#[async_trait]
impl CollectionWriter for WeaviateWriter {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: MAX_BATCH_OBJECTS,
            max_bytes: MAX_BATCH_BYTES,
        }
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    async fn write(&self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.ensure_tenants(&records).await?;
        // The record ids, to name failed objects by the ids the user knows.
        let ids: BTreeMap<String, String> = records
            .iter()
            .map(|r| {
                (
                    object_id(&r.id).0.hyphenated().to_string(),
                    r.id.to_string(),
                )
            })
            .collect();
        let objects: Vec<Value> = records.into_iter().map(|r| self.object_of(r)).collect();
        let answer: Vec<wire::BatchObject> = self
            .weaviate
            .call(
                Method::POST,
                "/v1/batch/objects",
                Some(json!({"objects": objects})),
                "batch objects",
            )
            .await?;
        let failures = batch_failures(&answer);
        if !failures.is_empty() {
            let named: Vec<String> = failures
                .iter()
                .take(10)
                .map(|(uuid, m)| format!("record {:?}: {m}", ids.get(uuid).unwrap_or(uuid)))
                .collect();
            return Err(Error::InvalidData(format!(
                "weaviate rejected {} of {} objects of a batch into class `{}`:\n  {}",
                failures.len(),
                answer.len(),
                self.class,
                named.join("\n  ")
            )));
        }
        Ok(())
    }

    async fn discard(&self) -> Result<bool> {
        if !self.created {
            return Ok(false);
        }
        self.weaviate
            .call_if_found(
                Method::DELETE,
                &format!("/v1/schema/{}", segment(&self.class)),
                None,
                "delete class",
            )
            .await?;
        Ok(true)
    }

    async fn count(&self) -> Result<u64> {
        let class = self
            .weaviate
            .class(&self.class)
            .await?
            .ok_or_else(|| self.weaviate.not_found(&self.class))?;
        self.weaviate.count(&class).await
    }
}
