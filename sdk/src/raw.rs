//! Any API call by method and path, with the client's base URL and credentials: for routes
//! a program reaches before its SDK knows them, and for `funmagic api` (as `gh api`). The
//! answer is returned as is (status, headers, body); nothing is retried.

use crate::Client;

/// What the server answered.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl RawResponse {
    /// The body as JSON (`Null` when it is empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends `method path` (the path may carry a query) with an optional JSON body and extra
/// headers, authenticated as the client is.
pub async fn call(
    client: &Client,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<&serde_json::Value>,
    headers: &[(String, String)],
) -> Result<RawResponse, reqwest::Error> {
    let path = if path_and_query.starts_with('/') { path_and_query.to_string() } else { format!("/{path_and_query}") };
    let mut req = client.client.request(method, format!("{}{path}", client.baseurl));
    req = req.header(reqwest::header::ACCEPT, "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?;
    Ok(RawResponse { status, headers, body })
}
