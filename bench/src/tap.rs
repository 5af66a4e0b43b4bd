//! A TCP relay in front of Asterisk that notes when an operation passes through it: the
//! moment the operation leaves its sender (uapid or this benchmark), before Asterisk's
//! own work starts. Both paths of the action overhead comparison go through it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the tap looks for in the bytes sent to Asterisk, and the name it notes.
const MARKS: &[(&[u8], &str)] = &[
    (b"Action: Park\r\n", "park"),
    (b"POST /ari/channels?", "unpark"),
    (b"Action: Redirect\r\n", "transfer"),
];

type Marks = Arc<Mutex<Vec<(&'static str, Instant)>>>;

#[derive(Clone, Default)]
pub struct Tap {
    marks: Marks,
}

impl Tap {
    /// Listens on a loopback port and relays every connection to `upstream`.
    pub async fn start(&self, upstream: &str) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("tap listens");
        let addr = l.local_addr().expect("tap address");
        let (upstream, marks) = (upstream.to_string(), self.marks.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = l.accept().await {
                let _ = down.set_nodelay(true);
                let Ok(up) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = up.set_nodelay(true);
                let (dr, mut dw) = down.into_split();
                let (mut ur, uw) = up.into_split();
                tokio::spawn(relay_marking(dr, uw, marks.clone()));
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut ur, &mut dw).await;
                });
            }
        });
        addr
    }

    /// When the first operation `name` sent at or after `since` passed through.
    pub fn first(&self, name: &str, since: Instant) -> Option<Instant> {
        self.marks
            .lock()
            .unwrap()
            .iter()
            .find(|(n, t)| *n == name && *t >= since)
            .map(|(_, t)| *t)
    }

    /// Forgets every mark.
    pub fn clear(&self) {
        self.marks.lock().unwrap().clear();
    }
}

/// Relays what the sender writes to Asterisk, noting each operation in [`MARKS`] as it
/// passes.
async fn relay_marking(mut dr: OwnedReadHalf, mut uw: OwnedWriteHalf, marks: Marks) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match dr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        for (pat, name) in MARKS {
            if buf[..n].windows(pat.len()).any(|w| w == *pat) {
                marks.lock().unwrap().push((name, now));
            }
        }
        if uw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = uw.shutdown().await;
}
