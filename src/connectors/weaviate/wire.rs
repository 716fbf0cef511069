//! Weaviate's REST answers as vecport reads them. Every field vecport relies
//! on is required: an answer without it (a renamed field, a proxy's page in
//! place of the API's) is an [`Error::Protocol`](crate::Error::Protocol)
//! naming the field, never an empty list. Class definitions stay JSON
//! values: they are kept whole in the snapshot.

use serde::Deserialize;
use serde_json::Value;

/// `GET /v1/schema`.
#[derive(Debug, Deserialize)]
pub struct Schema {
    /// The class definitions (`null` on a server without classes).
    #[serde(deserialize_with = "null_as_empty")]
    pub classes: Vec<Value>,
}

/// `GET /v1/meta`.
#[derive(Debug, Deserialize)]
pub struct Meta {
    /// The server's version.
    pub version: String,
}

/// One tenant of `GET /v1/schema/{class}/tenants`.
#[derive(Debug, Deserialize)]
pub struct Tenant {
    /// Its name.
    pub name: String,
}

/// The answer of `POST /v1/graphql`.
#[derive(Debug, Deserialize)]
pub struct GraphQl {
    /// What the query read; absent when it failed.
    #[serde(default)]
    pub data: Option<Value>,
    /// Why it failed.
    #[serde(default)]
    pub errors: Option<Vec<Message>>,
}

/// An error message of Weaviate's (`{"message": "…"}`).
#[derive(Debug, Deserialize)]
pub struct Message {
    /// The text.
    pub message: String,
}

/// The error body of a failed REST call: `{"error": [{"message": …}]}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// Its messages.
    pub error: Vec<Message>,
}

/// One object's result in the answer of `POST /v1/batch/objects`.
#[derive(Debug, Deserialize)]
pub struct BatchObject {
    /// The object's UUID.
    pub id: String,
    /// Whether it was written.
    pub result: BatchResult,
}

/// See [`BatchObject`].
#[derive(Debug, Default, Deserialize)]
pub struct BatchResult {
    /// Present when the object was not written.
    #[serde(default)]
    pub errors: Option<ErrorBody>,
}

impl BatchObject {
    /// Why the object was not written (its messages joined), if it was not.
    pub fn failure(&self) -> Option<String> {
        let errors = self.result.errors.as_ref()?;
        (!errors.error.is_empty()).then(|| {
            errors
                .error
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Whether the object failed for a reason that passes: the server ran
    /// out of time or could not reach a shard. Writing it again may succeed.
    pub fn failed_transiently(&self) -> bool {
        self.failure().is_some_and(|m| transient(&m))
    }
}

/// Whether a Weaviate error message tells of a passing failure.
pub fn transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context deadline exceeded",
        "timeout",
        "timed out",
        "connection refused",
        "connection reset",
        "unavailable",
        "too many requests",
    ]
    .iter()
    .any(|t| m.contains(t))
}

/// `null` as an empty list.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_without_classes_names_the_field() {
        let err = serde_json::from_str::<Schema>(r#"{"error":"not here"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `classes`"), "{err}");
        let empty: Schema = serde_json::from_str(r#"{"classes":null}"#).unwrap();
        assert!(empty.classes.is_empty());
    }

    #[test]
    fn batch_failures_and_which_pass() {
        let answer: Vec<BatchObject> = serde_json::from_str(
            r#"[{"id":"a","result":{}},
                {"id":"b","result":{"errors":{"error":[{"message":"vector lengths don't match"}]}}},
                {"id":"c","result":{"errors":{"error":[{"message":"context deadline exceeded"}]}}}]"#,
        )
        .unwrap();
        assert_eq!(answer[0].failure(), None);
        assert_eq!(
            answer[1].failure().as_deref(),
            Some("vector lengths don't match")
        );
        assert!(!answer[1].failed_transiently());
        assert!(answer[2].failed_transiently());
        let err = serde_json::from_str::<Vec<BatchObject>>(r#"[{"uuid":"a","result":{}}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `id`"), "{err}");
    }
}
