//! A TCP proxy on loopback in front of PostgreSQL or Redis that injects network faults:
//! latency on every chunk, resets (every open connection cut with RST, new ones refused
//! while the window lasts) and black holes (bytes held, nothing answered; when the window
//! ends the held connections either resume or are cut), and one answer lost: the first
//! reply from the server that carries a given pattern is not forwarded and its connection
//! is cut, as when a connection breaks after the server did the work.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Pass,
    /// Each chunk waits this long before it is forwarded (both directions).
    Latency(Duration),
    /// New connections are reset at once.
    Refuse,
    /// Bytes are held, not forwarded.
    Blackhole,
    /// The first chunk from the server containing these bytes is dropped and its connection
    /// cut; later ones pass until this mode is set again (see [`Proxy::cuts`]).
    CutReplyOnce(&'static [u8]),
}

pub(crate) struct Proxy {
    pub(crate) port: u16,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    cut: Arc<Cut>,
}

/// `Mode::CutReplyOnce`'s state: whether it is still to cut, and how often it did.
#[derive(Default)]
struct Cut {
    armed: AtomicBool,
    count: AtomicUsize,
}

impl Proxy {
    pub(crate) async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Pass);
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let cut_state: Arc<Cut> = Arc::default();
        let (tx, held, cuts) = (mode.clone(), conns.clone(), cut_state.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let rx = tx.subscribe();
                let cuts = cuts.clone();
                if *rx.borrow() == Mode::Refuse {
                    cut(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        cut(client);
                        return;
                    };
                    // Every close from here on is a reset: a cut connection looks like one.
                    let _ = client.set_zero_linger();
                    let _ = server.set_zero_linger();
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        () = pump(cr, sw, rx.clone(), None) => {}
                        () = pump(sr, cw, rx, Some(cuts)) => {}
                    }
                });
                let mut conns = held.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        });
        Proxy { port, mode, conns, cut: cut_state }
    }

    /// How many replies `Mode::CutReplyOnce` dropped.
    pub(crate) fn cuts(&self) -> usize {
        self.cut.count.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, mode: Mode) {
        self.cut.armed.store(matches!(mode, Mode::CutReplyOnce(_)), Ordering::SeqCst);
        self.mode.send_replace(mode);
    }

    /// Cuts every open connection (RST to both sides).
    pub(crate) fn reset_all(&self) {
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

fn cut(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    // On the server's side: `Mode::CutReplyOnce`'s state.
    replies: Option<Arc<Cut>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let now = *mode.borrow_and_update();
            match now {
                Mode::Pass | Mode::Refuse => break,
                Mode::CutReplyOnce(pattern) => {
                    if let Some(state) = &replies
                        && buf[..n].windows(pattern.len()).any(|w| w == pattern)
                        && state.armed.swap(false, Ordering::SeqCst)
                    {
                        state.count.fetch_add(1, Ordering::SeqCst);
                        // Returning drops both halves (zero linger: a reset).
                        return;
                    }
                    break;
                }
                Mode::Latency(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Mode::Blackhole => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
