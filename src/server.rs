//! The HTTP(S) server: binds the listener, serves the router (rustls for HTTPS), and keeps
//! what connections may take within the limits of the settings:
//!
//! - HTTP/1.1 only (TLS offers `http/1.1` alone in ALPN): what UAPI clients speak, and
//!   the one protocol the limits below are written for.
//! - a request's line and headers must arrive within `header_timeout_secs`, counted from
//!   when the connection opens or the previous answer ends (hyper's header timer; the
//!   TLS handshake gets the same time);
//! - a connection with no request in progress is closed after `keep_alive_secs` without
//!   a byte from the client ([`Conn`]);
//! - at most `max_connections` connections, and `max_connections_per_address` from one
//!   address (an IPv6 address by its /64): one more is answered `503` with a UAPI body
//!   and `Retry-After`, then closed ([`Capped`]). At most [`MAX_REFUSING`] such answers
//!   are under way at once; beyond that a connection is closed at once;
//! - the descriptor limit is raised to the hard limit at start, and the connection cap
//!   lowered if the descriptors would not hold it;
//! - hyper's own limits on a request head are set above uapid's (the router's guard
//!   answers those with JSON); the few heads hyper still refuses by itself (over its
//!   buffer, over 100 header lines, unparsable) get their empty `400`/`414`/`431`
//!   rewritten into the UAPI JSON body on the way out ([`Conn`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use axum_server::accept::{Accept, NoDelayAcceptor};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::api::error::{ApiError, Code};
use crate::config::{Limits, TlsSettings};
use crate::StartError;

/// Over-cap answers under way at once, at most.
pub const MAX_REFUSING: usize = 128;
/// Descriptors kept for what is not a client connection (Asterisk links, files, over-cap
/// answers).
const RESERVED_FDS: u64 = 128 + MAX_REFUSING as u64;

/// A bound listener, not yet serving.
pub(crate) struct Bound {
    listener: std::net::TcpListener,
    pub addr: SocketAddr,
}

/// Binds `listen` (port 0 picks a free one).
pub(crate) fn bind(listen: SocketAddr) -> Result<Bound, StartError> {
    let err = |source| StartError::Listen {
        addr: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok(Bound { listener, addr })
}

/// Raises the soft limit on open descriptors to the hard one; returns the soft limit
/// now in force.
pub(crate) fn raise_fd_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return None;
        }
        if r.rlim_cur < r.rlim_max {
            // An unlimited hard limit is still bounded by the kernel (fs.nr_open).
            for want in [r.rlim_max, 1 << 20] {
                let w = libc::rlimit {
                    rlim_cur: want.min(r.rlim_max),
                    rlim_max: r.rlim_max,
                };
                if w.rlim_cur > r.rlim_cur && libc::setrlimit(libc::RLIMIT_NOFILE, &w) == 0 {
                    r.rlim_cur = w.rlim_cur;
                    break;
                }
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    Some(r.rlim_cur as u64)
}

/// Serves `router` on the bound listener until `handle` shuts it down.
pub(crate) async fn serve(
    bound: Bound,
    router: Router,
    tls: Option<&TlsSettings>,
    limits: &Limits,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<JoinHandle<()>, StartError> {
    let make = router.into_make_service_with_connect_info::<SocketAddr>();
    let addr = bound.addr;
    let mut server = axum_server::from_tcp(bound.listener)
        .map_err(|source| StartError::Listen { addr, source })?
        .handle(handle)
        .http1_only();
    let header_timeout = Duration::from_secs(limits.header_timeout_secs);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        // Room for uapid's own limits, which the router's guard answers with JSON.
        .max_buf_size((2 * (limits.max_uri_bytes + limits.max_header_bytes)).max(16 * 1024));

    let mut max = limits.max_connections;
    let fds = raise_fd_limit();
    if let Some(fds) = fds {
        let room = fds.saturating_sub(RESERVED_FDS).max(1) as usize;
        if max > room {
            tracing::warn!(
                max_connections = max,
                descriptors = fds,
                "the descriptor limit holds {room} connections: the cap is lowered to that"
            );
            max = room;
        }
    }
    tracing::info!(
        max_connections = max,
        per_address = limits.max_connections_per_address,
        descriptors = ?fds,
        "connection limits"
    );
    let gate = Arc::new(Gate::new(max, limits.max_connections_per_address));
    let keep_alive = Duration::from_secs(limits.keep_alive_secs);
    fn capped<A>(inner: A, gate: &Arc<Gate>, keep_alive: Duration) -> Capped<A> {
        Capped {
            inner,
            gate: gate.clone(),
            keep_alive,
        }
    }
    let task = match tls {
        None => {
            let srv = server.acceptor(capped(NoDelayAcceptor::new(), &gate, keep_alive));
            tokio::spawn(async move {
                if let Err(e) = srv.serve(make).await {
                    tracing::error!("HTTP server: {e}");
                }
            })
        }
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let cfg = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| StartError::Tls(format!("{}: {e}", tls.cert.display())))?;
            let mut only_h1 = (*cfg.get_inner()).clone();
            only_h1.alpn_protocols = vec![b"http/1.1".to_vec()];
            let cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(only_h1));
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(cfg)
                .handshake_timeout(header_timeout)
                .acceptor(NoDelayAcceptor::new());
            let srv = server.acceptor(capped(tls, &gate, keep_alive));
            tokio::spawn(async move {
                if let Err(e) = srv.serve(make).await {
                    tracing::error!("HTTPS server: {e}");
                }
            })
        }
    };
    Ok(task)
}

// ---------------------------------------------------------------------------------------
// The connection cap

/// Where a connection is counted: its address, an IPv6 one by its /64.
fn addr_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(a) & !0u128 >> 64 << 64)),
        },
        v4 => v4,
    }
}

struct Gate {
    max: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    refusing: AtomicUsize,
    refused: AtomicU64,
    logged: Mutex<Option<Instant>>,
}

/// A connection's place under the cap, given back when it closes.
pub(crate) struct Slot {
    gate: Arc<Gate>,
    key: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 -= 1;
        if let Some(k) = self.key {
            if let Some(n) = open.1.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&k);
                }
            }
        }
    }
}

impl Gate {
    fn new(max: usize, per_address: usize) -> Gate {
        Gate {
            max,
            per_address,
            open: Mutex::new((0, HashMap::new())),
            refusing: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            logged: Mutex::new(None),
        }
    }

    /// A slot, or why there is none.
    fn enter(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, &'static str> {
        let key = ip.map(addr_key);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= self.max {
            return Err("uapid has as many connections open as it takes");
        }
        if let Some(k) = key.filter(|_| self.per_address > 0) {
            let n = open.1.entry(k).or_insert(0);
            if *n >= self.per_address {
                return Err("this address has as many connections open as it may");
            }
            *n += 1;
        }
        open.0 += 1;
        Ok(Slot {
            gate: self.clone(),
            key: key.filter(|_| self.per_address > 0),
        })
    }

    /// Notes a refused connection; logs at most once every 10 s.
    fn note_refused(&self, ip: Option<IpAddr>, why: &str) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if logged.is_none_or(|t| now >= t + Duration::from_secs(10)) {
            *logged = Some(now);
            let open = self.open.lock().map_or(0, |o| o.0);
            tracing::warn!(addr = ?ip, open, refused_so_far = n, "connection refused: {why}");
        }
    }
}

/// The acceptor that counts connections: under the cap, the inner acceptor's stream
/// wrapped in a [`Conn`]; over it, a `503` and the connection closed.
#[derive(Clone)]
pub(crate) struct Capped<A> {
    inner: A,
    gate: Arc<Gate>,
    keep_alive: Duration,
}

type Accepting<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl<A, S> Accept<TcpStream, S> for Capped<A>
where
    A: Accept<TcpStream, Tracked<S>> + Clone + Send + Sync + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
    A::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = Conn<A::Stream>;
    type Service = A::Service;
    type Future = Accepting<(Self::Stream, Self::Service)>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ip = stream.peer_addr().ok().map(|a| a.ip());
        let requests = Arc::new(AtomicUsize::new(0));
        let service = Tracked {
            inner: service,
            requests: requests.clone(),
        };
        let keep_alive = self.keep_alive;
        match self.gate.enter(ip) {
            Ok(slot) => {
                let accepting = self.inner.accept(stream, service);
                Box::pin(async move {
                    let (io, service) = accepting.await?;
                    Ok((Conn::new(io, slot, requests, keep_alive), service))
                })
            }
            Err(why) => {
                self.gate.note_refused(ip, why);
                let gate = self.gate.clone();
                if gate.refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
                    gate.refusing.fetch_sub(1, Ordering::AcqRel);
                    return Box::pin(async { Err(io::Error::other("over the cap")) });
                }
                let accepting = self.inner.accept(stream, service);
                Box::pin(async move {
                    // The TLS handshake has its own timeout; the answer takes under 0.4 s.
                    let _ = tokio::time::timeout(Duration::from_secs(15), async {
                        let (io, _) = accepting.await?;
                        refuse(io, why).await
                    })
                    .await;
                    gate.refusing.fetch_sub(1, Ordering::AcqRel);
                    Err(io::Error::other("over the cap"))
                })
            }
        }
    }
}

/// Answers `503` on a connection over the cap and closes it. The client's head is
/// awaited briefly (clients send it right after connecting), and when it sent something,
/// what follows is read until it closes (for a moment): closing with unread bytes would
/// reset the connection, and the client could lose the answer.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, why: &str) -> io::Result<()> {
    let answer = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::ServiceUnavailable,
        format!("{why}; try again shortly"),
    )
    .retry_after(1)
    .to_http1();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        while seen.len() < 16 * 1024 && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    io.write_all(&answer).await?;
    io.flush().await?;
    io.shutdown().await?;
    if !seen.is_empty() {
        let _ = tokio::time::timeout(Duration::from_millis(250), async {
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
    Ok(())
}

/// The service of one connection, counting its requests in progress (a connection with
/// one is not idle, however long its handler takes).
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    requests: Arc<AtomicUsize>,
}

struct InProgress(Arc<AtomicUsize>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.requests.fetch_add(1, Ordering::AcqRel);
        let in_progress = InProgress(self.requests.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let _in_progress = in_progress;
            fut.await
        })
    }
}

// ---------------------------------------------------------------------------------------
// A connection

/// An accepted connection (after TLS): holds its slot under the cap, closes itself when
/// idle too long, and rewrites hyper's own empty error answers into UAPI ones.
pub(crate) struct Conn<S> {
    io: S,
    _slot: Slot,
    requests: Arc<AtomicUsize>,
    keep_alive: Duration,
    idle: Pin<Box<Sleep>>,
    /// Since the connection opened or an answer went out, no byte came in.
    waiting: bool,
    /// A rewritten answer on its way: the bytes, how many are out, and the length of
    /// what hyper asked to write instead.
    rewriting: Option<(Vec<u8>, usize, usize)>,
}

impl<S> Conn<S> {
    fn new(io: S, slot: Slot, requests: Arc<AtomicUsize>, keep_alive: Duration) -> Conn<S> {
        Conn {
            io,
            _slot: slot,
            requests,
            keep_alive,
            idle: Box::pin(tokio::time::sleep(keep_alive)),
            waiting: true,
            rewriting: None,
        }
    }

    fn wrote(&mut self) {
        self.waiting = true;
        self.idle.as_mut().reset(Instant::now() + self.keep_alive);
    }
}

/// hyper's answer to a head it refused by itself, in UAPI form: only those answers have
/// no body among uapid's errors.
fn rewritten(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > 1024 || !buf.starts_with(b"HTTP/1.1 ") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?.to_ascii_lowercase();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let message = match status {
        400 => "the request is not well-formed HTTP/1.1",
        414 => "the request URI is too long",
        431 => "the request head is too large (or has over 100 header lines)",
        _ => return None,
    };
    if !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let status = StatusCode::from_u16(status).ok()?;
    Some(ApiError::of_status(status, message).to_http1())
}

impl<S: AsyncRead + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.waiting = false;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.waiting
                    && this.requests.load(Ordering::Acquire) == 0
                    && this.idle.as_mut().poll(cx).is_ready()
                {
                    // Idle too long: the end of the stream, which hyper closes.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            err => err,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewriting.is_none() {
            if let Some(bytes) = rewritten(buf) {
                this.rewriting = Some((bytes, 0, buf.len()));
            }
        }
        if let Some((bytes, out, asked)) = &mut this.rewriting {
            while *out < bytes.len() {
                match Pin::new(&mut this.io).poll_write(cx, &bytes[*out..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *out += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let asked = *asked;
            this.rewriting = None;
            this.wrote();
            return Poll::Ready(Ok(asked));
        }
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper's own error answers are one buffer: those go through poll_write.
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.rewriting.is_some()
            || first.is_some_and(|b| {
                bufs.iter().filter(|b| !b.is_empty()).count() == 1 && rewritten(b).is_some()
            })
        {
            let buf: &[u8] = first.map_or(&[], |b| b);
            return Pin::new(this).poll_write(cx, buf);
        }
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.wrote();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_error_answers_are_rewritten() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 22 Nov 2026 12:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewritten(head).unwrap()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{out}"
        );
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_headers_too_large");
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
        // Anything with a body, or another status, is left alone.
        assert!(rewritten(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewritten(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n").is_none());
        assert!(rewritten(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").is_some());
    }

    #[test]
    fn the_gate_counts_per_address_and_in_all() {
        let gate = Arc::new(Gate::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b2: IpAddr = "2001:db8::2".parse().unwrap();
        let s1 = gate.enter(Some(a)).unwrap();
        let _s2 = gate.enter(Some(a)).unwrap();
        assert!(gate.enter(Some(a)).is_err(), "per address");
        let _s3 = gate.enter(Some(b)).unwrap();
        assert!(gate.enter(Some(b2)).is_err(), "in all");
        drop(s1);
        assert!(gate.enter(Some(b2)).is_ok());
        assert_eq!(gate.open.lock().unwrap().0, 2, "the dropped slot came back");
        assert_eq!(addr_key(b2), addr_key(b), "one /64");
    }
}

#[cfg(test)]
mod serve_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An answer far over hyper's buffer (which uapid sets small) goes out whole, twice on
    /// one kept-alive connection.
    #[tokio::test]
    async fn a_large_answer_goes_out_whole() {
        let big = "x".repeat(3 << 20);
        let body = big.clone();
        let router = Router::new().route(
            "/big",
            axum::routing::get(move || {
                let b = body.clone();
                async move { b }
            }),
        );
        let bound = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = bound.addr;
        let handle = axum_server::Handle::new();
        let task = serve(bound, router, None, &Limits::default(), handle.clone())
            .await
            .unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            c.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let want = loop {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
                if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4 + big.len();
                }
            };
            while got.len() < want {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), want);
            assert!(got.ends_with(big.as_bytes()));
        }
        handle.shutdown();
        let _ = task.await;
    }
}
