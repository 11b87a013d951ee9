//! Accepted connections under a cap: each holds a permit of the server's connection
//! limit for as long as it is open, so a flood of sockets cannot exhaust the process's
//! file descriptors; connections past the cap wait in the kernel's backlog until one
//! closes. A connection on which nothing was read or written for the idle timeout is
//! closed (its next read fails with `TimedOut`), so idle sockets give their slots back.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A TCP stream that gives its permit back when it is dropped (closed) and times out
/// when idle.
#[derive(Debug)]
pub(crate) struct Capped {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    /// When the connection counts as idle: pushed back by every byte read or written.
    idle_at: Pin<Box<tokio::time::Sleep>>,
}

impl Capped {
    fn active(&mut self) {
        let at = tokio::time::Instant::now() + self.idle;
        self.idle_at.as_mut().reset(at);
    }
}

/// How the listeners treat connections.
#[derive(Clone)]
pub(crate) struct Limits {
    /// Permits for open connections, shared by both listeners.
    pub(crate) cap: Arc<Semaphore>,
    /// Close a connection after this long with no byte read or written.
    pub(crate) idle: Duration,
    /// TLS, when configured: connections are served only after their handshake,
    /// which must finish within `handshake`.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// How long a TLS handshake may take.
    pub(crate) handshake: Duration,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("idle", &self.idle).field("tls", &self.tls.is_some()).finish()
    }
}

/// An accepted connection, in the clear or through TLS.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(Capped),
    Tls(Box<tokio_rustls::server::TlsStream<Capped>>),
}

impl Limits {
    /// `conn` ready to serve: as it is, or after its TLS handshake (`None` if that
    /// fails or takes too long; the failure is logged).
    async fn secure(&self, conn: Capped) -> Option<Conn> {
        let Some(tls) = &self.tls else { return Some(Conn::Plain(conn)) };
        match tokio::time::timeout(self.handshake, tls.accept(conn)).await {
            Ok(Ok(stream)) => Some(Conn::Tls(Box::new(stream))),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                None
            }
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Conn::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Conn::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepts connections from `listener` one permit of `cap` at a time. An accept error
/// (say, out of file descriptors) is logged and retried after a pause.
pub(crate) async fn accept(listener: &TcpListener, limits: &Limits) -> Capped {
    loop {
        // Closed only when the server drops the semaphore, which it never does while
        // listening; then accept without a cap rather than stop serving.
        let permit = match limits.cap.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => continue,
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let idle_at = Box::pin(tokio::time::sleep(limits.idle));
                return Capped { stream, _permit: permit, idle: limits.idle, idle_at };
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.active();
                Poll::Ready(r)
            }
            Poll::Pending => match self.idle_at.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle")))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if written.is_ready() {
            self.active();
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if written.is_ready() {
            self.active();
        }
        written
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `app` over HTTP/1 and HTTP/2 on connections accepted through `limits`,
/// until `shutdown` resolves; then lets each connection finish its request in flight
/// and returns once all have closed. A client must send a request's whole header
/// within `header_timeout` (hyper's header-read timer), so trickling bytes cannot
/// hold a connection either.
pub(crate) async fn serve_http(
    listener: TcpListener,
    limits: Limits,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            conn = accept(&listener, &limits) => conn,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        let limits = limits.clone();
        connections.spawn(async move {
            let Some(conn) = limits.secure(conn).await else { return };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let served = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
            let mut served = std::pin::pin!(served);
            tokio::select! {
                _ = served.as_mut() => {}
                _ = closed.changed() => {
                    served.as_mut().graceful_shutdown();
                    let _ = served.await;
                }
            }
        });
        // Reap finished connections as we go.
        while connections.try_join_next().is_some() {}
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Conn::Plain(c) => c.stream.connect_info(),
            Conn::Tls(c) => c.get_ref().0.stream.connect_info(),
        }
    }
}

/// Aborts the accepting task when the stream of connections is dropped, so the
/// listener closes when the server stops.
struct Acceptor(tokio::task::JoinHandle<()>);

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// gRPC's incoming connections, through the cap, each after its TLS handshake when
/// TLS is on (handshakes run side by side, so a slow client holds up no other).
pub(crate) fn incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl futures_util::Stream<Item = Result<Conn, io::Error>> {
    let (ready, arrivals) = tokio::sync::mpsc::channel::<Conn>(64);
    let acceptor = Acceptor(tokio::spawn(async move {
        loop {
            let conn = accept(&listener, &limits).await;
            let (limits, ready) = (limits.clone(), ready.clone());
            tokio::spawn(async move {
                if let Some(conn) = limits.secure(conn).await {
                    let _ = ready.send(conn).await;
                }
            });
        }
    }));
    futures_util::stream::unfold((arrivals, acceptor), |(mut arrivals, acceptor)| async move {
        let conn = arrivals.recv().await?;
        Some((Ok(conn), (arrivals, acceptor)))
    })
}
