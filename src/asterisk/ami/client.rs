//! AMI session: login, ActionID correlation, list collection, events, reconnection.
//!
//! One task owns the TCP connection. Callers send actions through [`AmiClient::send`] and
//! get back the response together with any list events that belong to it. Every event,
//! list events included, is also forwarded in wire order to the event sink, so the
//! tracker sees snapshots (ParkedCalls) and live events in the order Asterisk produced
//! them. When the connection drops, pending actions fail at once and the task reconnects
//! with backoff.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::{Decoder, Message};
use crate::asterisk::{Due, Keepalive, Liveness};
use crate::config::Secret;

/// What the AMI session tells the rest of uapid, in order.
#[derive(Debug, Clone)]
pub enum AmiNotice {
    /// Logged in (again); what was known from AMI before may be stale.
    Connected,
    Event(Message),
    /// The session ended (why); it reconnects.
    Disconnected(String),
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AmiError {
    /// The action was not sent: the session is down.
    #[error("AMI is not connected")]
    NotConnected,
    /// The action was (or may have been) sent, and no answer came: whether Asterisk
    /// did it is unknown.
    #[error("no answer from AMI: {0}")]
    NoAnswer(String),
    #[error("AMI refused the action: {0}")]
    Refused(String),
}

/// A completed action: the response and the list events that carried its ActionID.
#[derive(Debug, Clone)]
pub struct AmiReply {
    pub response: Message,
    pub events: Vec<Message>,
}

impl AmiReply {
    pub fn is_success(&self) -> bool {
        self.response
            .get("Response")
            .is_some_and(|r| r.eq_ignore_ascii_case("Success") || r.eq_ignore_ascii_case("Follows"))
    }

    pub fn message(&self) -> &str {
        self.response.get("Message").unwrap_or("")
    }
}

type Pending = oneshot::Sender<Result<AmiReply, AmiError>>;

struct Request {
    action: Message,
    reply: Pending,
}

#[derive(Clone)]
pub struct AmiClient {
    requests: mpsc::Sender<Request>,
    connected: watch::Receiver<bool>,
}

#[derive(Clone, Debug)]
pub struct AmiConfig {
    pub addr: String,
    pub user: String,
    pub secret: Secret,
    /// Event names to receive (AMI `Filter` after login); empty: every event. Responses
    /// and the list events of uapid's own actions come through either way.
    pub events: Vec<String>,
    pub keepalive: Keepalive,
}

/// The AMI events the tracker and the actions read.
pub const TRACKED_EVENTS: &[&str] = &[
    "ParkedCall",
    "UnParkedCall",
    "ParkedCallTimeOut",
    "ParkedCallGiveUp",
    "ParkedCallSwap",
    "OriginateResponse",
    "MixMonitorStart",
    "MixMonitorStop",
    "Newchannel",
];

const ACTION_TIMEOUT: Duration = Duration::from_secs(10);

impl AmiClient {
    /// Starts the session task; notices go to `sink`. Abort the task to disconnect.
    pub fn spawn(
        cfg: AmiConfig,
        sink: mpsc::UnboundedSender<AmiNotice>,
    ) -> (AmiClient, tokio::task::JoinHandle<()>) {
        let (req_tx, req_rx) = mpsc::channel(1024);
        let (conn_tx, conn_rx) = watch::channel(false);
        let task = tokio::spawn(run(cfg, req_rx, sink, conn_tx));
        let client = AmiClient {
            requests: req_tx,
            connected: conn_rx,
        };
        (client, task)
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    pub fn connected_watch(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// Sends an action and waits (bounded) for its response and list events.
    pub async fn send(&self, action: Message) -> Result<AmiReply, AmiError> {
        if !self.is_connected() {
            return Err(AmiError::NotConnected);
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request { action, reply: tx })
            .await
            .map_err(|_| AmiError::NotConnected)?;
        match tokio::time::timeout(ACTION_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            // Dropped before it was written (the session ended with it queued).
            Ok(Err(_)) => Err(AmiError::NotConnected),
            Err(_) => Err(AmiError::NoAnswer(format!(
                "none within {}s",
                ACTION_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Like [`send`](Self::send) but an error response becomes [`AmiError::Refused`].
    pub async fn request(&self, action: Message) -> Result<AmiReply, AmiError> {
        let reply = self.send(action).await?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(AmiError::Refused(reply.message().to_string()))
        }
    }
}

async fn run(
    cfg: AmiConfig,
    mut requests: mpsc::Receiver<Request>,
    sink: mpsc::UnboundedSender<AmiNotice>,
    connected: watch::Sender<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match session(&cfg, &mut requests, &sink, &connected).await {
            SessionEnd::Shutdown => return,
            SessionEnd::Lost(why) => {
                if *connected.borrow() {
                    tracing::warn!(addr = %cfg.addr, "AMI connection lost: {why}");
                    backoff = Duration::from_millis(200);
                } else {
                    tracing::debug!(addr = %cfg.addr, "AMI connect failed: {why}");
                }
                connected.send_replace(false);
                let _ = sink.send(AmiNotice::Disconnected(why));
            }
        }
        // Refuse what callers send while we are down, then wait before retrying.
        let deadline = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                r = requests.recv() => match r {
                    Some(r) => { let _ = r.reply.send(Err(AmiError::NotConnected)); }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}

struct InFlight {
    reply: Pending,
    response: Option<Message>,
    events: Vec<Message>,
}

/// The reading half of a session, with what it has buffered.
struct Reader {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    decoder: Decoder,
    buf: Vec<u8>,
}

/// Connects, reads the greeting, logs in and installs the event filter.
async fn connect(cfg: &AmiConfig) -> Result<(Reader, tokio::net::tcp::OwnedWriteHalf), String> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&cfg.addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (read_half, mut write) = stream.into_split();
    let mut r = Reader {
        read: BufReader::new(read_half),
        decoder: Decoder::new(),
        buf: vec![0u8; 64 * 1024],
    };
    // Greeting: one line, "Asterisk Call Manager/x.y.z".
    let mut greeting = String::new();
    match tokio::time::timeout(Duration::from_secs(5), r.read.read_line(&mut greeting)).await {
        Ok(Ok(n)) if n > 0 && greeting.starts_with("Asterisk Call Manager") => {}
        Ok(Ok(_)) => return Err(format!("not an AMI greeting: {greeting:?}")),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no AMI greeting".into()),
    }
    login(cfg, &mut r, &mut write).await?;
    if !cfg.events.is_empty() {
        let filter = Message::new()
            .with("Action", "Filter")
            .with("Operation", "Add")
            .with("Filter", format!("Event: ({})", cfg.events.join("|")))
            .with("ActionID", "filter");
        write
            .write_all(filter.encode().as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((r, write))
}

/// Logs in before anything else; events that come first are skipped.
async fn login(
    cfg: &AmiConfig,
    r: &mut Reader,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) -> Result<(), String> {
    let login = Message::new()
        .with("Action", "Login")
        .with("Username", &cfg.user)
        .with("Secret", cfg.secret.expose())
        .with("Events", "on")
        .with("ActionID", "login");
    write
        .write_all(login.encode().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match r.decoder.next_message() {
            Ok(Some(m)) if m.action_id() == Some("login") => {
                if m.get("Response") == Some("Success") {
                    return Ok(());
                }
                return Err(format!(
                    "AMI login refused: {}",
                    m.get("Message").unwrap_or("")
                ));
            }
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match tokio::time::timeout_at(deadline, r.read.read(&mut r.buf)).await {
            Ok(Ok(0)) => return Err("closed during login".into()),
            Ok(Ok(n)) => r.decoder.feed(&r.buf[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("login timed out".into()),
        }
    }
}

async fn session(
    cfg: &AmiConfig,
    requests: &mut mpsc::Receiver<Request>,
    sink: &mpsc::UnboundedSender<AmiNotice>,
    connected: &watch::Sender<bool>,
) -> SessionEnd {
    let (mut r, mut write) = match connect(cfg).await {
        Ok(c) => c,
        Err(why) => return SessionEnd::Lost(why),
    };
    tracing::info!(addr = %cfg.addr, "AMI connected");
    connected.send_replace(true);
    let _ = sink.send(AmiNotice::Connected);

    let lost = |e: &dyn std::fmt::Display| SessionEnd::Lost(e.to_string());
    let mut next_id: u64 = 1;
    let mut inflight: HashMap<String, InFlight> = HashMap::new();
    let mut live = Liveness::new(cfg.keepalive);
    let end = 'session: loop {
        // Drain every complete message already buffered.
        loop {
            match r.decoder.next_message() {
                Ok(Some(m)) => route(m, &mut inflight, sink),
                Ok(None) => break,
                Err(e) => break 'session lost(&e),
            }
        }
        tokio::select! {
            n = r.read.read(&mut r.buf) => match n {
                Ok(0) => break SessionEnd::Lost("AMI closed the connection".into()),
                Ok(n) => {
                    live.heard();
                    r.decoder.feed(&r.buf[..n]);
                }
                Err(e) => break lost(&e),
            },
            _ = tokio::time::sleep_until(live.deadline()) => match live.due() {
                Due::Probe => {
                    let ping = Message::new().with("Action", "Ping").with("ActionID", "keepalive");
                    if let Err(e) = write.write_all(ping.encode().as_bytes()).await {
                        break lost(&e);
                    }
                }
                Due::Dead(after) => break SessionEnd::Lost(format!(
                    "no answer to a keepalive Ping for {:.1}s",
                    after.as_secs_f64()
                )),
            },
            req = requests.recv() => match req {
                None => break SessionEnd::Shutdown,
                Some(Request { mut action, reply }) => {
                    let id = format!("uapid-{next_id}");
                    next_id += 1;
                    action.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("ActionID"));
                    action.headers.push(("ActionID".into(), id.clone()));
                    if let Err(e) = write.write_all(action.encode().as_bytes()).await {
                        let _ = reply.send(Err(AmiError::NotConnected));
                        break lost(&e);
                    }
                    inflight.insert(id, InFlight { reply, response: None, events: Vec::new() });
                }
            },
        }
    };
    // Written, never answered: Asterisk may or may not have done them.
    let why = match &end {
        SessionEnd::Lost(why) => why.clone(),
        SessionEnd::Shutdown => "uapid is stopping".into(),
    };
    for (_, f) in inflight.drain() {
        let _ = f
            .reply
            .send(Err(AmiError::NoAnswer(format!("the link was lost: {why}"))));
    }
    end
}

/// Sends a message where it belongs: the action waiting for it, the event sink, or both.
fn route(
    m: Message,
    inflight: &mut HashMap<String, InFlight>,
    sink: &mpsc::UnboundedSender<AmiNotice>,
) {
    let id = m.action_id().map(str::to_string);
    let is_event = m.event().is_some();
    if is_event {
        let _ = sink.send(AmiNotice::Event(m.clone()));
    }
    let Some(id) = id else { return };
    let Some(f) = inflight.get_mut(&id) else {
        return;
    };
    if is_event {
        let complete = m
            .get("EventList")
            .is_some_and(|v| v.eq_ignore_ascii_case("Complete"));
        if complete {
            if let Some(f) = inflight.remove(&id) {
                let response = f.response.unwrap_or_default();
                let _ = f.reply.send(Ok(AmiReply {
                    response,
                    events: f.events,
                }));
            }
        } else {
            f.events.push(m);
        }
        return;
    }
    // A response. A list follows when it says so; otherwise the action is done.
    let list_follows = m
        .get("EventList")
        .is_some_and(|v| v.eq_ignore_ascii_case("start"))
        && m.get("Response")
            .is_some_and(|r| r.eq_ignore_ascii_case("Success"));
    if list_follows {
        f.response = Some(m);
    } else if let Some(f) = inflight.remove(&id) {
        let _ = f.reply.send(Ok(AmiReply {
            response: m,
            events: Vec::new(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A scripted stand-in for Asterisk's AMI port: enough to exercise framing,
    /// correlation and list collection without a PBX.
    async fn fake_ami() -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            w.write_all(b"Asterisk Call Manager/11.0.0\r\n")
                .await
                .unwrap();
            let mut r = BufReader::new(r);
            let mut d = Decoder::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                d.feed(&buf[..n]);
                while let Some(m) = d.next_message().unwrap() {
                    let id = m.action_id().unwrap_or("").to_string();
                    let out = match m.get("Action").unwrap_or("") {
                        "Login" => format!("Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"),
                        "ParkedCalls" => format!(
                            "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Parked calls will follow\r\n\r\n\
                             Event: Newchannel\r\nUniqueid: 9.9\r\n\r\n\
                             Event: ParkedCall\r\nActionID: {id}\r\nParkingSpace: 701\r\nParkeeUniqueid: 1.3\r\n\r\n\
                             Event: ParkedCallsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 1\r\n\r\n"),
                        _ => format!("Response: Error\r\nActionID: {id}\r\nMessage: Invalid/unknown command\r\n\r\n"),
                    };
                    w.write_all(out.as_bytes()).await.unwrap();
                }
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn correlates_actions_and_collects_lists() {
        let (addr, _task) = fake_ami().await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cfg = AmiConfig {
            addr,
            user: "u".into(),
            secret: Secret::new("s"),
            events: vec![],
            keepalive: Keepalive::default(),
        };
        let (client, _task) = AmiClient::spawn(cfg, tx);
        let mut conn = client.connected_watch();
        tokio::time::timeout(Duration::from_secs(5), conn.wait_for(|c| *c))
            .await
            .unwrap()
            .unwrap();

        let reply = client
            .request(Message::new().with("Action", "ParkedCalls"))
            .await
            .unwrap();
        assert_eq!(reply.events.len(), 1);
        assert_eq!(reply.events[0].get("ParkingSpace"), Some("701"));

        let err = client
            .request(Message::new().with("Action", "Bogus"))
            .await
            .unwrap_err();
        assert_eq!(err, AmiError::Refused("Invalid/unknown command".into()));

        // The sink saw Connected, then the events in wire order, list events included.
        let mut seen = Vec::new();
        while let Ok(n) = rx.try_recv() {
            seen.push(match n {
                AmiNotice::Connected => "connected".to_string(),
                AmiNotice::Event(m) => m.event().unwrap().to_string(),
                AmiNotice::Disconnected(_) => "disconnected".to_string(),
            });
        }
        assert_eq!(
            seen,
            [
                "connected",
                "Newchannel",
                "ParkedCall",
                "ParkedCallsComplete"
            ]
        );
    }

    #[tokio::test]
    async fn fails_fast_when_down() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let cfg = AmiConfig {
            addr: "127.0.0.1:1".into(),
            user: "u".into(),
            secret: Secret::new("s"),
            events: vec![],
            keepalive: Keepalive::default(),
        };
        let (client, _task) = AmiClient::spawn(cfg, tx);
        let err = client
            .send(Message::new().with("Action", "Ping"))
            .await
            .unwrap_err();
        assert_eq!(err, AmiError::NotConnected);
    }

    /// An AMI port that logs in and then says nothing more, as a frozen Asterisk does
    /// (its TCP connection stays open).
    async fn frozen_ami() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            w.write_all(b"Asterisk Call Manager/11.0.0\r\n")
                .await
                .unwrap();
            let mut r = BufReader::new(r);
            let mut d = Decoder::new();
            let mut buf = [0u8; 4096];
            loop {
                let Ok(n) = r.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                d.feed(&buf[..n]);
                while let Ok(Some(m)) = d.next_message() {
                    if m.get("Action") == Some("Login") {
                        let ok = "Response: Success\r\nActionID: login\r\n\r\n";
                        w.write_all(ok.as_bytes()).await.unwrap();
                    }
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_silent_peer_is_declared_dead_and_pending_actions_are_unconfirmed() {
        let addr = frozen_ami().await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cfg = AmiConfig {
            addr,
            user: "u".into(),
            secret: Secret::new("s"),
            events: vec![],
            keepalive: Keepalive {
                every: Duration::from_millis(100),
                within: Duration::from_millis(200),
            },
        };
        let (client, _task) = AmiClient::spawn(cfg, tx);
        let mut conn = client.connected_watch();
        tokio::time::timeout(Duration::from_secs(5), conn.wait_for(|c| *c))
            .await
            .unwrap()
            .unwrap();
        // Sent, never answered: the outcome is unknown, and it is said as soon as the
        // keepalive gives up (well before the action's own 10 s bound).
        let started = std::time::Instant::now();
        let err = client
            .send(Message::new().with("Action", "Park"))
            .await
            .unwrap_err();
        assert!(matches!(err, AmiError::NoAnswer(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let why = loop {
            match rx.recv().await.unwrap() {
                AmiNotice::Disconnected(why) => break why,
                _ => continue,
            }
        };
        assert!(why.contains("keepalive"), "{why}");
        // While the session is down, actions are refused unsent.
        conn.wait_for(|c| !*c).await.unwrap();
        assert_eq!(
            client
                .send(Message::new().with("Action", "Ping"))
                .await
                .unwrap_err(),
            AmiError::NotConnected
        );
    }
}
