//! Running the HTTP server: bind (port 0 picks a free port), serve until a shutdown signal,
//! then drain in-flight requests within a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::http;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A server running in the background (tests, embedded use).
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drains, and waits for the server task.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Binds `listen` and serves `state` until `shutdown` resolves.
pub async fn bind(
    state: AppState,
    listen: SocketAddr,
) -> std::io::Result<(SocketAddr, impl FnOnce(Box<dyn Future<Output = ()> + Send + Unpin>) -> ServeFuture)> {
    let acceptor = TcpListener::bind(listen).into_acceptor().await?;
    let addr = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).unwrap_or(listen);
    state.set_bound_addr(addr);
    let serve = move |shutdown: Box<dyn Future<Output = ()> + Send + Unpin>| -> ServeFuture {
        Box::pin(async move {
            poem::Server::new_with_acceptor(acceptor)
                .name("funmagic")
                .run_with_graceful_shutdown(http::routes(state), shutdown, Some(SHUTDOWN_GRACE))
                .await
        })
    };
    Ok((addr, serve))
}

pub type ServeFuture = std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// Starts serving in a background task; the returned handle stops it.
pub async fn spawn(state: AppState, listen: SocketAddr) -> std::io::Result<RunningServer> {
    let (addr, serve) = bind(state.clone(), listen).await?;
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = Box::new(Box::pin(async move {
        let _ = rx.await;
    }));
    let handle = tokio::spawn(serve(shutdown));
    Ok(RunningServer { addr, state, shutdown: Some(tx), handle })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received: shutting down"),
        _ = term => tracing::info!("SIGTERM received: shutting down"),
    }
}
