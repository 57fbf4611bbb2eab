//! Serving connections. `axum::serve` gives hyper no timer, and without one hyper applies no
//! header-read timeout at all: a client that sends one header byte a minute holds its
//! connection for ever (slowloris; security review M4). This accept loop is axum's, with
//! a timer and a header-read timeout on HTTP/1, `TCP_NODELAY` on every socket (small
//! writes such as server-sent events leave at once instead of waiting ~40 ms for the
//! peer's delayed ACK), and a graceful shutdown that gives open streams a few seconds.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Service;

/// How long open connections get to finish after a shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` resolves. Each request sees the peer
/// address as `ConnectInfo<SocketAddr>`. `header_read_timeout` bounds how long an HTTP/1
/// client may take to send a request's headers (the connection is closed after it).
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let tower_service = match make_service.call(remote).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(tower_service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, peer = %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::info!("closed connections still open after the shutdown grace period");
    }
    Ok(())
}
