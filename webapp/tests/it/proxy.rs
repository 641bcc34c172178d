//! A TCP proxy in front of the real PostgreSQL that a test can turn off in the two ways a
//! database goes away: refusing connections (the server is down) and going silent
//! (connections are accepted, nothing is answered: a frozen host or a partition).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    /// Nothing listens: connecting fails with "connection refused", open connections are cut.
    Refuse,
    /// Connections are accepted and kept, but no byte passes either way until [`Mode::Forward`].
    Blackhole,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("bound");
        let (mode, watched) = watch::channel(Mode::Forward);
        let task = tokio::spawn(serve(listener, addr, upstream, watched));
        Proxy { addr, mode, task }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Refuse);
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    let mut listener = Some(listener);
    loop {
        let current = *mode.borrow_and_update();
        match (current, listener.as_ref()) {
            (Mode::Refuse, Some(_)) => listener = None,
            (Mode::Forward | Mode::Blackhole, None) => {
                // Taken again at once; the port is ours as long as nobody else grabs it meanwhile.
                listener = Some(
                    TcpListener::bind(addr)
                        .await
                        .expect("the proxy's port again"),
                )
            }
            _ => {}
        }
        let accepted = match listener.as_ref() {
            Some(l) => tokio::select! {
                accepted = l.accept() => accepted.ok(),
                changed = mode.changed() => { if changed.is_err() { return; } None }
            },
            None => {
                if mode.changed().await.is_err() {
                    return;
                }
                None
            }
        };
        if let Some((client, _)) = accepted {
            tokio::spawn(connect(client, upstream, mode.clone()));
        }
    }
}

/// Waits until bytes may pass; `false` when the proxy refuses (the connection must end).
async fn may_pass(mode: &mut watch::Receiver<Mode>) -> bool {
    loop {
        match *mode.borrow_and_update() {
            Mode::Forward => return true,
            Mode::Refuse => return false,
            Mode::Blackhole => {}
        }
        if mode.changed().await.is_err() {
            return false;
        }
    }
}

async fn connect(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if !may_pass(&mut mode).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(pump(client_read, server_write, mode.clone()));
    tokio::spawn(pump(server_read, client_write, mode));
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    while may_pass(&mut mode).await {
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { return },
            },
            // A read in progress is cancel-safe: nothing is lost, the loop looks at the mode.
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}
