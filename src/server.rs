//! The HTTP(S) server: binds the listener, serves the router (rustls for HTTPS).

use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinHandle;

use crate::config::TlsSettings;
use crate::StartError;

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

/// Serves `router` on the bound listener until `handle` shuts it down.
pub(crate) async fn serve(
    bound: Bound,
    router: Router,
    tls: Option<&TlsSettings>,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<JoinHandle<()>, StartError> {
    let make = router.into_make_service_with_connect_info::<SocketAddr>();
    let addr = bound.addr;
    let server = axum_server::from_tcp(bound.listener)
        .map_err(|source| StartError::Listen { addr, source })?
        .handle(handle);
    // TCP_NODELAY: a response leaves as soon as it is written.
    let nodelay = axum_server::accept::NoDelayAcceptor::new();
    let task = match tls {
        None => {
            let srv = server.acceptor(nodelay);
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
            let srv = server
                .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(cfg).acceptor(nodelay));
            tokio::spawn(async move {
                if let Err(e) = srv.serve(make).await {
                    tracing::error!("HTTPS server: {e}");
                }
            })
        }
    };
    Ok(task)
}
