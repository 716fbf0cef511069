//! Raw HTTP, independent of vecport's connectors: for seeding servers and
//! reading them back, and for checking the emulators' answers as they arrive.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

/// An answer as it arrived: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON; a panic showing it when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The JSON body of a 200 answer.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        self.json()
    }
}

/// Sends `request`, with `body` as its JSON content when there is one, and
/// returns the answer whatever its status.
pub async fn send(request: RequestBuilder, body: Option<String>) -> Answer {
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(body),
        None => request,
    };
    let response = request.send().await.expect("request");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

/// Sends `method` to `url` with `body` as JSON, asserts a success status
/// (the failure names `what`) and returns the body's text.
pub async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
    what: &str,
) -> String {
    let answer = send(http.request(method, url), body.map(|b| b.to_string())).await;
    let (status, text) = (answer.status, answer.text);
    assert!(status.is_success(), "{what}: {status} {text}");
    text
}

/// POSTs `body` to `url`, asserts a success status, and returns the answer
/// as JSON (null when it is none).
pub async fn post(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let text = call(http, Method::POST, url, Some(body), url).await;
    serde_json::from_str(&text).unwrap_or(Value::Null)
}
