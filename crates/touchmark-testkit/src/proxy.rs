//! A TCP relay between a store and its database server that a test can cut and restore, to
//! play a database outage (or a partition) with the real server behind it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Relays `127.0.0.1:PORT` to a target address while up. Cut, it closes every relayed
/// connection and refuses new ones, as a stopped server's host would; restored, it accepts on
/// the same port again. Dropping it stops it.
pub struct TcpProxy {
    addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
        let addr = listener.local_addr().expect("local address");
        let (up, _) = watch::channel(true);
        let up = Arc::new(up);
        let task = tokio::spawn(serve(listener, target, Arc::clone(&up)));
        Self { addr, up, task }
    }

    /// A relay in front of the server of the database URL `url` (`scheme://[user@]host[:port]/…`),
    /// and the same URL through the relay.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => (format!("{user}@"), host_port),
            None => (String::new(), authority),
        };
        let target = tokio::net::lookup_host(if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        })
        .await
        .expect("the database host resolves")
        .next()
        .expect("an address");
        let proxy = Self::start(target).await;
        let through = format!("{scheme}://{user}{}{path}", proxy.addr());
        (proxy, through)
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts and relays again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(first: TcpListener, target: SocketAddr, up: Arc<watch::Sender<bool>>) {
    let addr = first.local_addr().expect("local address");
    let mut listener = Some(first);
    let mut state = up.subscribe();
    loop {
        // While cut: no listener (connections are refused), and no relays.
        let Some(accepting) = listener.take() else {
            let _ = state.wait_for(|up| *up).await;
            listener = Some(
                TcpListener::bind(addr)
                    .await
                    .expect("bind the same port again"),
            );
            continue;
        };
        let mut relays = JoinSet::new();
        loop {
            tokio::select! {
                accepted = accepting.accept() => {
                    let Ok((client, _)) = accepted else { continue };
                    relays.spawn(relay(client, target));
                }
                _ = state.wait_for(|up| !*up) => break,
            }
        }
        // Dropping the listener and the relays closes everything.
        drop(accepting);
        relays.shutdown().await;
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}
