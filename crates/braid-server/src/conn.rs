//! Accepted connections under a cap: each holds a permit of the server's connection
//! limit for as long as it is open, so a flood of idle sockets cannot exhaust the
//! process's file descriptors; connections past the cap wait in the kernel's backlog
//! until one closes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A TCP stream that gives its permit back when it is dropped (closed).
#[derive(Debug)]
pub(crate) struct Capped {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

/// Accepts connections from `listener` one permit of `cap` at a time. An accept error
/// (say, out of file descriptors) is logged and retried after a pause.
pub(crate) async fn accept(listener: &TcpListener, cap: &Arc<Semaphore>) -> Capped {
    loop {
        // Closed only when the server drops the semaphore, which it never does while
        // listening; then accept without a cap rather than stop serving.
        let permit = match cap.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => continue,
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return Capped { stream, _permit: permit };
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
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
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
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// REST's listener: axum accepts through the cap.
pub(crate) struct CappedListener {
    pub(crate) listener: TcpListener,
    pub(crate) cap: Arc<Semaphore>,
}

impl axum::serve::Listener for CappedListener {
    type Io = Capped;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Capped, std::net::SocketAddr) {
        let conn = accept(&self.listener, &self.cap).await;
        let addr = conn.stream.peer_addr().unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        (conn, addr)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }
}

impl tonic::transport::server::Connected for Capped {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// gRPC's incoming connections, through the cap. The listener lives in the stream, so
/// it closes when the server stops polling it.
pub(crate) fn incoming(
    listener: TcpListener,
    cap: Arc<Semaphore>,
) -> impl futures_util::Stream<Item = Result<Capped, io::Error>> {
    futures_util::stream::unfold((listener, cap), |(listener, cap)| async move {
        let conn = accept(&listener, &cap).await;
        Some((Ok(conn), (listener, cap)))
    })
}
