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
    let acceptor = IdleAcceptor {
        inner: acceptor,
        idle: Duration::from_secs(state.settings().idle_timeout_secs),
        header_timeout: Duration::from_secs(state.settings().header_timeout_secs),
    };
    state.set_bound_addr(addr);
    allow_browser_origins(&state).await;
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

/// With S3 and `s3.manage_cors`, sets the buckets' CORS rules for the origins browsers use
/// (this server, the web app, `auth.cors_origins`); a failure is logged, not fatal (the
/// API works without it; only browser uploads and the 3D viewer need it).
async fn allow_browser_origins(state: &AppState) {
    let Some(s3) = &state.settings().s3 else { return };
    if !s3.manage_cors {
        return;
    }
    let mut origins: Vec<String> = [state.public_url(), state.web_url()]
        .into_iter()
        .chain(state.settings().auth.cors_origins.iter().cloned())
        .filter_map(|url| crate::urls::origin(&url))
        .collect();
    origins.sort();
    origins.dedup();
    if let Err(err) = state.storage().allow_browser_origins(&origins).await {
        tracing::warn!(error = %err, "could not set the buckets' CORS rules; browser uploads to S3 may be refused (set them yourself, or s3.manage_cors = false)");
    }
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

/// Accepts connections that end after `idle` without traffic either way: a client that
/// sends half a request and stops, or an idle keep-alive connection, is cut off instead of
/// being held forever. (poem's own idle timeout only starts a graceful shutdown, which
/// waits for the half-read request for good.) Writes count as traffic, so an event stream
/// with its 15 s heartbeat lives on.
///
/// HTTP/1 request heads must also arrive whole within `header_timeout` of their first byte
/// (of the connection, for the first request), however slowly they trickle in: a client
/// that dribbles a header byte every few seconds is cut off too.
struct IdleAcceptor<A> {
    inner: A,
    idle: Duration,
    header_timeout: Duration,
}

impl<A: Acceptor<Io = tokio::net::TcpStream>> Acceptor for IdleAcceptor<A> {
    type Io = IdleIo<A::Io>;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(Self::Io, poem::web::LocalAddr, poem::web::RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        // Answers and events are small writes: without TCP_NODELAY, Nagle's algorithm holds
        // a write back until the peer acknowledges the one before, and a peer that delays
        // its ACKs (Linux: up to 40 ms) stalls the stream that long. Seen as a 44 ms floor
        // under every task's POST -> `completed` on an idle server.
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
        let deadline = Box::pin(tokio::time::sleep(self.idle.min(self.header_timeout)));
        let head = Head::Awaiting { until: tokio::time::Instant::now() + self.header_timeout, tail: Vec::new() };
        let io = IdleIo { inner: io, idle: self.idle, header_timeout: self.header_timeout, deadline, head };
        Ok((io, local, remote, scheme))
    }
}

/// A connection whose reads fail with `TimedOut` once nothing was read or written for its
/// idle time (the deadline moves on with every byte either way).
struct IdleIo<T> {
    inner: T,
    idle: Duration,
    header_timeout: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    head: Head,
}

/// Where the connection is in reading an HTTP/1 request head.
enum Head {
    /// Reading a head that must be complete by `until`; `tail` keeps the last bytes read, so
    /// a `\r\n\r\n` split across reads is found.
    Awaiting { until: tokio::time::Instant, tail: Vec<u8> },
    /// The head arrived; the body and the answer are the idle timeout's business.
    Read,
    /// A response went out: the next byte read starts the next head.
    Between,
}

impl<T> IdleIo<T> {
    fn touch(&mut self) {
        let mut next = tokio::time::Instant::now() + self.idle;
        if let Head::Awaiting { until, .. } = &self.head {
            next = next.min(*until);
        }
        self.deadline.as_mut().reset(next);
    }

    /// Follows the request head through the bytes just read; false once its deadline passed.
    fn on_read(&mut self, data: &[u8]) -> bool {
        if matches!(self.head, Head::Read) {
            return true;
        }
        let now = tokio::time::Instant::now();
        if matches!(self.head, Head::Between) {
            self.head = Head::Awaiting { until: now + self.header_timeout, tail: Vec::new() };
        }
        let Head::Awaiting { until, tail } = &mut self.head else { return true };
        if now >= *until {
            return false;
        }
        // The end of the head may straddle the previous read and this one.
        let mut seam = std::mem::take(tail);
        seam.extend_from_slice(&data[..data.len().min(3)]);
        let end = b"\r\n\r\n";
        if seam.windows(4).any(|w| w == end) || data.windows(4).any(|w| w == end) {
            self.head = Head::Read;
        } else {
            let mut last = seam;
            last.extend_from_slice(&data[data.len().min(3)..]);
            let keep = last.len().saturating_sub(3);
            last.drain(..keep);
            *tail = last;
        }
        true
    }

    /// A final (non-1xx) HTTP/1 status line going out ends the request.
    fn on_write(&mut self, data: &[u8]) {
        if matches!(self.head, Head::Read) && data.len() > 9 && data.starts_with(b"HTTP/1.") && data[9] != b'1' {
            self.head = Head::Between;
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        let slow_head = || {
            Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request head did not arrive within the header timeout",
            )))
        };
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    if !self.on_read(&buf.filled()[before..]) {
                        return slow_head();
                    }
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) if matches!(self.head, Head::Awaiting { .. }) => slow_head(),
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no traffic on the connection for the idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(written, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.on_write(data);
            self.touch();
        }
        written
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(written, std::task::Poll::Ready(Ok(n)) if n > 0) {
            if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
                self.on_write(first);
            }
            self.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
