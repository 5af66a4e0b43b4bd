//! The ARI events websocket, subscribed to everything (`subscribeAll=true`), so uapid
//! sees the channels and bridges of the ordinary dialplan and not only its Stasis app.
//!
//! The task forwards each text frame untouched (parsing happens where the events are
//! applied, so a recorder can keep the exact bytes) and reconnects with backoff.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::AriRest;
use crate::asterisk::{Due, Keepalive, Liveness};
use crate::config::Secret;

#[derive(Debug, Clone)]
pub enum AriNotice {
    /// The websocket is up and the app is registered: resynchronize now.
    Connected,
    /// One event, as JSON text.
    Text(String),
    /// The websocket is gone (why); it reconnects.
    Disconnected(String),
}

#[derive(Clone, Debug)]
pub struct AriWsConfig {
    pub base_url: String,
    pub user: String,
    pub password: Secret,
    pub app: String,
    pub keepalive: Keepalive,
}

/// How a websocket session ended.
enum End {
    /// Closed cleanly (by Asterisk, or by uapid stopping).
    Closed,
    Failed(String),
    /// Another client connected with the same application name and took it over.
    Replaced,
}

/// Base64 for the basic-auth header (small enough not to need a crate).
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

pub fn events_url(cfg: &AriWsConfig) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/ari/events?app={}&subscribeAll=true", cfg.app)
}

/// Starts the websocket task. Returns a watch that says whether it is connected, and
/// the task (abort it to disconnect).
pub fn spawn(
    cfg: AriWsConfig,
    rest: AriRest,
    sink: mpsc::UnboundedSender<AriNotice>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    // No stop signal: the task runs until aborted.
    let (_, stop) = watch::channel(false);
    spawn_stoppable(cfg, rest, sink, stop)
}

/// Like [`spawn`]; setting `stop` to true closes the websocket cleanly (a Close frame,
/// and Asterisk's answer awaited briefly) and ends the task. A clean close matters: a
/// new connection for the same application must not race the old one's teardown.
pub fn spawn_stoppable(
    cfg: AriWsConfig,
    rest: AriRest,
    sink: mpsc::UnboundedSender<AriNotice>,
    stop: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run(cfg, rest, sink, tx, stop));
    (rx, task)
}

/// Resolves once `stop` says true (or its sender is gone for good).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run(
    cfg: AriWsConfig,
    rest: AriRest,
    sink: mpsc::UnboundedSender<AriNotice>,
    connected: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let stop_now = *stop.borrow();
        if sink.is_closed() || stop_now {
            return;
        }
        let end = session(&cfg, &sink, &connected, &mut stop).await;
        let why = match &end {
            End::Closed => {
                backoff = Duration::from_millis(200);
                "the websocket was closed".to_string()
            }
            End::Failed(e) => e.clone(),
            End::Replaced => format!(
                "another client took over the ARI application {} (a second uapid with the same asterisk.app?)",
                cfg.app
            ),
        };
        if *connected.borrow() {
            tracing::warn!("ARI websocket lost: {why}");
            connected.send_replace(false);
            let _ = sink.send(AriNotice::Disconnected(why.clone()));
        } else {
            tracing::debug!("ARI websocket: {why}");
        }
        if let End::Replaced = end {
            tracing::error!(app = %cfg.app, "{why}; uapid waits until the application is free, then takes it back");
            tokio::select! {
                _ = wait_until_free(&rest, &cfg.app) => {}
                _ = stopped(&mut stop) => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Whether an ARI application of this name is registered on the PBX now (`None`: ARI
/// did not say).
pub async fn app_registered(rest: &AriRest, app: &str) -> Option<bool> {
    match rest
        .get::<serde_json::Value>(&format!("/applications/{app}"))
        .await
    {
        Ok(_) => Some(true),
        Err(e) if e.status() == Some(404) => Some(false),
        Err(_) => None,
    }
}

/// Polls until no client holds the application.
async fn wait_until_free(rest: &AriRest, app: &str) {
    while app_registered(rest, app).await != Some(false) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Whether a text frame is Asterisk's ApplicationReplaced event (a small message; the
/// check is cheap enough for every frame).
fn is_replaced(text: &str) -> bool {
    text.len() < 512 && text.contains("\"ApplicationReplaced\"")
}

async fn connect(cfg: &AriWsConfig) -> Result<Ws, String> {
    let mut req = events_url(cfg)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let auth = format!("{}:{}", cfg.user, cfg.password.expose());
    let value = HeaderValue::from_str(&format!("Basic {}", base64(auth.as_bytes())))
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert("Authorization", value);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn session(
    cfg: &AriWsConfig,
    sink: &mpsc::UnboundedSender<AriNotice>,
    connected: &watch::Sender<bool>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let mut ws = match connect(cfg).await {
        Ok(ws) => ws,
        Err(e) => return End::Failed(e),
    };
    tracing::info!(app = %cfg.app, "ARI websocket connected");
    connected.send_replace(true);
    let _ = sink.send(AriNotice::Connected);
    let mut live = Liveness::new(cfg.keepalive);
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stopped(stop) => {
                let _ = ws.close(None).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                return End::Closed;
            }
            _ = tokio::time::sleep_until(live.deadline()) => {
                match live.due() {
                    Due::Probe => {
                        if let Err(e) = ws.send(WsMessage::Ping(Default::default())).await {
                            return End::Failed(e.to_string());
                        }
                    }
                    Due::Dead(after) => {
                        return End::Failed(format!(
                            "no answer to a keepalive ping for {:.1}s",
                            after.as_secs_f64()
                        ))
                    }
                }
                continue;
            }
        };
        let Some(msg) = msg else { return End::Closed };
        live.heard();
        match msg {
            Err(e) => return End::Failed(e.to_string()),
            Ok(WsMessage::Text(t)) => {
                let replaced = is_replaced(&t);
                if sink.send(AriNotice::Text(t.to_string())).is_err() {
                    return End::Closed;
                }
                if replaced {
                    // The application is no longer ours: nothing more will come here.
                    let _ = ws.close(None).await;
                    return End::Replaced;
                }
            }
            Ok(WsMessage::Close(_)) => return End::Closed,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"uapid:uapid-secret"), "dWFwaWQ6dWFwaWQtc2VjcmV0");
    }

    #[test]
    fn url_is_ws_with_subscribe_all() {
        let cfg = AriWsConfig {
            base_url: "http://127.0.0.1:8088/".into(),
            user: "u".into(),
            password: Secret::new("p"),
            app: "uapid".into(),
            keepalive: Keepalive::default(),
        };
        assert_eq!(
            events_url(&cfg),
            "ws://127.0.0.1:8088/ari/events?app=uapid&subscribeAll=true"
        );
    }

    #[test]
    fn application_replaced_is_recognized() {
        assert!(is_replaced(
            r#"{"type":"ApplicationReplaced","timestamp":"2026-11-30T10:00:00.000+0000","application":"uapid"}"#
        ));
        assert!(!is_replaced(r#"{"type":"ChannelCreated","channel":{}}"#));
    }
}
