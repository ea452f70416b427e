//! The HTTPS accept loop: TLS handshakes under a timeout, the peer certificate of each
//! connection handed to every request on it, and the connection limits of issue 11 (security
//! finding 1): a cap with the longest-idle connection shed first ([`crate::connections`]), a
//! header-read timeout, an idle timeout, HTTP/2 keep-alive pings, and a deep listen backlog.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::connections::{Connections, Slot};

/// The certificate chain a client presented in the TLS handshake, unverified (see
/// [`crate::tls`]). Absent when it presented none.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Option<Arc<Vec<CertificateDer<'static>>>>);

/// How the server treats connections. The defaults suit a server in a test, a demo or a
/// benchmark (up to 1,024 clients at once); `touchmark serve` sizes
/// [`ConnectionLimits::max_connections`] from its open-file limit ([`crate::limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, at most. At the cap, a new connection closes the one idle
    /// longest (in its TLS handshake, or with no request in flight).
    pub max_connections: usize,
    /// How long a client may take to complete its TLS handshake, from the accept.
    pub handshake_timeout: Duration,
    /// HTTP/1.1: how long a client may take to send a request's headers, counted from when the
    /// server waits for one (after the handshake, or after the previous response). So it also
    /// bounds an HTTP/1.1 keep-alive pause.
    pub header_timeout: Duration,
    /// How long a connection may stay with no request in flight before it is closed: what
    /// bounds an idle HTTP/2 connection (HTTP/1.1 meets the header timeout first when it is
    /// shorter).
    pub idle_timeout: Duration,
    /// The listen backlog: connections the kernel queues until they are accepted (Linux caps
    /// it at `net.core.somaxconn`).
    pub backlog: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            backlog: 4096,
        }
    }
}

/// How often HTTP/2 connections with requests in flight are pinged, and how long an answer may
/// take before the connection is closed as dead.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Binds `addr` with a listen backlog of `backlog`.
///
/// # Errors
/// When the socket cannot be made, bound or put to listen.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind while old connections linger
    // in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Connections::new(limits.max_connections);
    let limits = Arc::new(limits);
    let reaper = tokio::spawn(close_idle(Arc::clone(&connections), limits.idle_timeout));
    tokio::pin!(shutdown);
    loop {
        // At the cap with every connection busy, new ones wait in the backlog.
        tokio::select! {
            () = connections.room() => {},
            () = &mut shutdown => break,
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, open = connections.open(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (slot, shed) = connections.admit(tokio::time::Instant::now());
        if shed > 0 {
            tracing::debug!(%peer, shed, "at the connection cap: the longest idle made room");
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            acceptor.clone(),
            stream,
            peer,
            app.clone(),
            slot,
            Arc::clone(&limits),
        ));
    }
    reaper.abort();
}

/// Closes connections idle longer than `idle`, checking a few times per `idle`.
async fn close_idle(connections: Arc<Connections>, idle: Duration) {
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(before) = tokio::time::Instant::now().checked_sub(idle) {
            let closed = connections.close_idle(before);
            if closed > 0 {
                tracing::debug!(closed, "closed idle connections");
            }
        }
    }
}

async fn connection(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    slot: Slot,
    limits: Arc<ConnectionLimits>,
) {
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
    let tls = tokio::select! {
        () = slot.closed() => {
            tracing::debug!(%peer, "connection shed during its TLS handshake");
            return;
        }
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    let certs = PeerCertificates(
        tls.get_ref()
            .1
            .peer_certificates()
            .map(|chain| Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect())),
    );
    let slot = Arc::new(slot);
    let requests = Arc::clone(&slot);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = requests.request();
        request.extensions_mut().insert(certs.clone());
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = app.clone().oneshot(request);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Without a timer, hyper silently runs no timeout at all.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    let served = builder.serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        done = served => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        // Shed for a newer connection, or idle too long: dropping it closes the socket.
        () = slot.closed() => tracing::debug!(%peer, "idle connection closed"),
    }
}
