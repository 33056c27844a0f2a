//! The CLI's client for a running daemon's admin API: one command or one
//! call per intervention. Human-readable tables by default, `--json` for
//! scripts; clear errors when the daemon is unreachable or the token is
//! wrong.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the daemon at {url}: {message} (is `orderflow run` running? set --url or ORDERFLOW_URL)")]
    Unreachable { url: String, message: String },
    #[error("the daemon refused the token (401): set --token or ORDERFLOW_TOKEN to the daemon's server.admin_token")]
    Unauthorized,
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// A JSON call (`body` serialised as JSON when given).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// POST a JSON body, waiting up to `timeout` for the answer (a backup
    /// of a large store takes longer than the usual 30 s).
    pub async fn post_waiting(
        &self,
        path: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let req = self
            .http
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .timeout(timeout);
        self.send(req).await
    }

    /// GET a text answer (a CSV export) as it is.
    pub async fn get_text(&self, path: &str) -> Result<String, Error> {
        let (status, text) = self
            .exchange(self.http.get(format!("{}{}", self.base, path)))
            .await?;
        if status >= 400 {
            return Err(Error::Api {
                status,
                message: text,
            });
        }
        Ok(text)
    }

    /// POST a text body (a CSV import).
    pub async fn post_text(&self, path: &str, text: String) -> Result<Value, Error> {
        let req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("Content-Type", "text/csv")
            .body(text);
        self.send(req).await
    }

    /// Adds the token and sends: the status and the body as text (401 is
    /// the CLI's own error).
    async fn exchange(&self, mut req: reqwest::RequestBuilder) -> Result<(u16, String), Error> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            message: e.without_url().to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| Error::Decode(e.to_string()))?;
        if status == 401 {
            return Err(Error::Unauthorized);
        }
        Ok((status, text))
    }

    /// Adds the token, sends, and turns the answer into a value or one of
    /// the errors the CLI explains (unreachable, 401, an API error).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Error> {
        let (status, text) = self.exchange(req).await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let message = v["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            return Err(Error::Api { status, message });
        }
        Ok(v)
    }
}

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

/// A JSON value as a table cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
