//! ARI REST calls uapid makes (reqwest, basic auth, bounded by a timeout).

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::model::{Bridge, Channel};
use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum AriError {
    /// The request was not sent: no connection to ARI.
    #[error("ARI is unreachable: {0}")]
    Unreachable(String),
    /// The request was sent (or may have been) and no answer came: whether Asterisk did
    /// it is unknown.
    #[error("no answer from ARI: {0}")]
    NoAnswer(String),
    #[error("ARI answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("ARI answered something unexpected: {0}")]
    Decode(String),
}

impl AriError {
    pub fn status(&self) -> Option<u16> {
        match self {
            AriError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct AriRest {
    http: reqwest::Client,
    base: String,
    user: String,
    password: Secret,
}

impl AriRest {
    pub fn new(base_url: &str, user: &str, password: Secret) -> AriRest {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(16)
            // Asterisk closes idle HTTP sessions after 15 s (http.conf session_keep_alive):
            // drop ours first rather than send a request into one it is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .expect("HTTP client builds");
        AriRest {
            http,
            base: format!("{}/ari", base_url.trim_end_matches('/')),
            user: user.to_string(),
            password,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, AriError> {
        let resp = req
            .basic_auth(&self.user, Some(self.password.expose()))
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    AriError::Unreachable(e.without_url().to_string())
                } else {
                    AriError::NoAnswer(e.without_url().to_string())
                }
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or(body);
        Err(AriError::Status {
            status: status.as_u16(),
            message,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AriError> {
        let resp = self.send(self.http.get(self.url(path))).await?;
        resp.json()
            .await
            .map_err(|e| AriError::Decode(e.without_url().to_string()))
    }

    /// POST with query parameters; the JSON answer (if any) is returned as a value.
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<serde_json::Value, AriError> {
        let resp = self
            .send(self.http.post(self.url(path)).query(query))
            .await?;
        let text = resp.text().await.unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| AriError::Decode(e.to_string()))
    }

    /// POST with query parameters and a JSON body (ARI takes channel variables only
    /// there).
    pub async fn post_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<(), AriError> {
        self.send(self.http.post(self.url(path)).query(query).json(body))
            .await?;
        Ok(())
    }

    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> Result<(), AriError> {
        self.send(self.http.put(self.url(path)).json(body)).await?;
        Ok(())
    }

    pub async fn delete(&self, path: &str, query: &[(&str, &str)]) -> Result<(), AriError> {
        self.send(self.http.delete(self.url(path)).query(query))
            .await?;
        Ok(())
    }

    pub async fn channels(&self) -> Result<Vec<Channel>, AriError> {
        self.get("/channels").await
    }

    pub async fn bridges(&self) -> Result<Vec<Bridge>, AriError> {
        self.get("/bridges").await
    }

    /// Narrows an application's events to the types uapid reads
    /// ([`TRACKED_EVENTS`](super::model::TRACKED_EVENTS)); with `subscribeAll` the rest
    /// (ChannelVarset above all) would be most of the traffic.
    pub async fn set_event_filter(&self, app: &str) -> Result<(), AriError> {
        let allowed: Vec<serde_json::Value> = super::model::TRACKED_EVENTS
            .iter()
            .map(|t| serde_json::json!({ "type": t }))
            .collect();
        let body = serde_json::json!({ "allowed": allowed });
        self.put_json(&format!("/applications/{app}/eventFilter"), &body)
            .await
    }

    pub async fn hangup(&self, channel_id: &str) -> Result<(), AriError> {
        self.delete(&format!("/channels/{channel_id}"), &[]).await
    }
}
