//! The HTTP listener: HTTP/1.1 over TCP with hyper, serving the [`super::router`].
//!
//! axum's own `serve` sets no read timeouts, so a client could hold a connection open
//! forever by never finishing its headers. Here every connection is admitted by the
//! [`ConnectionLimit`] of its client address (503 and closed past it), and hyper closes
//! one whose request headers have not all arrived within `http.header_timeout` of it
//! being ready for them (when it opens, and after each response), which also ends idle
//! kept-alive connections. Bodies have their own deadline, `http.body_timeout`, where
//! they are read ([`super::visitor::visitor`]). There is no TLS listener yet and no
//! HTTP/2 (browsers use HTTP/2 only over TLS).

use crate::app::App;
use crate::connections::ConnectionLimit;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{info, warn};

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a client over its connection cap reads before the connection closes.
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\n\r\ntoo many connections from your address\n";

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limit = ConnectionLimit::new(
        "http",
        app.cfg.http.max_connections_per_client,
        app.metrics.clone(),
    );
    let header_timeout = Duration::from_secs_f64(app.cfg.http.header_timeout);
    serve_router(
        listener,
        super::router(app),
        limit,
        header_timeout,
        shutdown,
    )
    .await;
}

/// Serves only `GET /metrics`, without credentials, on a listener of its own
/// (`metrics.listen`), with the HTTP listener's timeouts and per-client cap.
pub async fn serve_metrics(listener: TcpListener, app: App) {
    let limit = ConnectionLimit::new(
        "metrics",
        app.cfg.http.max_connections_per_client,
        app.metrics.clone(),
    );
    let header_timeout = Duration::from_secs_f64(app.cfg.http.header_timeout);
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(super::metrics))
        .with_state(app);
    serve_router(
        listener,
        router,
        limit,
        header_timeout,
        std::future::pending(),
    )
    .await;
}

async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    limit: std::sync::Arc<ConnectionLimit>,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
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
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(sock), service);
        let conn = graceful.watch(conn);
        let limit = limit.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    limit.timed_out("headers");
                    tracing::debug!(%peer, "HTTP connection closed: headers too slow");
                } else {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended");
                }
            }
        });
    }
    info!("HTTP: no new connections; finishing requests in flight");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("HTTP: requests still in flight at shutdown were cut off");
    }
}
