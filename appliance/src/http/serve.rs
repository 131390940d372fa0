//! The HTTP listener: HTTP/1.1 over TCP with hyper, serving the [`super::router`].
//!
//! axum's own `serve` sets no read timeouts, so a client could hold a connection open
//! forever by never finishing its headers. Here every connection is admitted by the
//! [`ConnectionLimit`] of its client address (503 and closed past it), and hyper closes
//! one whose request headers have not all arrived within `http.header_timeout` of it
//! being ready for them (when it opens, and after each response), which also ends idle
//! kept-alive connections. Bodies have their own deadline, `http.body_timeout`, where
//! they are read ([`super::visitor::visitor`]).
//!
//! With `http.tls_listen` set, [`serve_tls`] serves the same router over TLS (rustls,
//! [`crate::tls`]); the handshake must finish within `http.header_timeout` too. Then the
//! plain listener's router redirects the admin routes to HTTPS ([`super::router`]).
//! Each request carries the [`Scheme`] of its listener. HTTP/2 is not offered yet
//! (ALPN `http/1.1` only).

use crate::app::App;
use crate::connections::ConnectionLimit;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{info, warn};

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a client over its connection cap reads before the connection closes.
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\n\r\ntoo many connections from your address\n";

/// The listener a request came in on, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (`http.listen`).
    Http,
    /// HTTPS (`http.tls_listen`).
    Https,
}

/// Serves `app` over plain HTTP on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let accept = Accept::of(&app, "http", Scheme::Http, None);
    serve_router(listener, super::router(app, Scheme::Http), accept, shutdown).await;
}

/// Serves `app` over TLS with `tls` on `listener` until `shutdown` resolves, as
/// [`serve`] does over plain HTTP (with a per-client connection cap of its own).
pub async fn serve_tls(
    listener: TcpListener,
    app: App,
    tls: std::sync::Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let accept = Accept::of(&app, "https", Scheme::Https, Some(TlsAcceptor::from(tls)));
    serve_router(
        listener,
        super::router(app, Scheme::Https),
        accept,
        shutdown,
    )
    .await;
}

/// Serves only `GET /metrics`, without credentials, on a listener of its own
/// (`metrics.listen`), with the HTTP listener's timeouts and per-client cap.
pub async fn serve_metrics(listener: TcpListener, app: App) {
    let accept = Accept::of(&app, "metrics", Scheme::Http, None);
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(super::metrics))
        .with_state(app);
    serve_router(listener, router, accept, std::future::pending()).await;
}

/// How a listener admits its connections.
struct Accept {
    scheme: Scheme,
    /// The TLS handshake to run first, for HTTPS.
    tls: Option<TlsAcceptor>,
    limit: std::sync::Arc<ConnectionLimit>,
    /// For the request headers, and for the TLS handshake before them.
    header_timeout: Duration,
}

impl Accept {
    /// The listener `name`'s admission: `http.max_connections_per_client` and
    /// `http.header_timeout`.
    fn of(app: &App, name: &'static str, scheme: Scheme, tls: Option<TlsAcceptor>) -> Accept {
        Accept {
            scheme,
            tls,
            limit: ConnectionLimit::new(
                name,
                app.cfg.http.max_connections_per_client,
                app.metrics.clone(),
            ),
            header_timeout: Duration::from_secs_f64(app.cfg.http.header_timeout),
        }
    }
}

async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    accept: Accept,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let Accept {
        scheme,
        tls,
        limit,
        header_timeout,
    } = accept;
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (sock, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = limit.admit(peer.ip()) else {
            // Best effort, never waiting: the client learns why before the close.
            let _ = sock.try_write(OVER_CAP);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let router = router.clone();
        let limit = limit.clone();
        let Some(tls) = tls.clone() else {
            let conn = graceful.watch(connection(sock, peer, scheme, router, header_timeout));
            tokio::spawn(async move {
                let _slot = slot;
                ended(conn.await, &limit, peer);
            });
            continue;
        };
        // The handshake runs on the connection's own task, under the header deadline.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tokio::time::timeout(header_timeout, tls.accept(sock)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    limit.timed_out("handshake");
                    tracing::debug!(%peer, "TLS connection closed: handshake too slow");
                    return;
                }
            };
            let conn = watcher.watch(connection(stream, peer, scheme, router, header_timeout));
            ended(conn.await, &limit, peer);
        });
    }
    info!(
        ?scheme,
        "HTTP: no new connections; finishing requests in flight"
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("HTTP: requests still in flight at shutdown were cut off");
    }
}

/// One connection's HTTP/1.1 server: every request carries the peer's address and the
/// listener's [`Scheme`]; request headers must arrive within `header_timeout`.
fn connection<S>(
    io: S,
    peer: SocketAddr,
    scheme: Scheme,
    router: axum::Router,
    header_timeout: Duration,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        req.extensions_mut().insert(scheme);
        router.clone().oneshot(req)
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
}

/// Logs how a connection ended, counting a header timeout.
fn ended(result: Result<(), hyper::Error>, limit: &ConnectionLimit, peer: SocketAddr) {
    if let Err(e) = result {
        if e.is_timeout() {
            limit.timed_out("headers");
            tracing::debug!(%peer, "HTTP connection closed: headers too slow");
        } else {
            tracing::debug!(%peer, error = %e, "HTTP connection ended");
        }
    }
}
