//! The socket under a session, opened here rather than by tokio-postgres so
//! that the session reads it through [`super::read_gate`]: TCP (each address
//! the host resolves to in turn, or `hostaddr`) or a unix-socket directory,
//! as libpq connects, with tokio-postgres's own defaults (no Nagle delay,
//! keepalives after two idle hours).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::conninfo::ConnInfo;

/// Idle time before TCP keepalives start (tokio-postgres's and libpq's default).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A connected TCP or unix socket.
pub enum RawSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Opens the socket `info` names; `port` is where to connect (a tunnel's
/// local end, or the server's). Each attempt has `connect_timeout`.
///
/// # Errors
/// The last attempt's error: refused, unresolvable, timed out.
pub async fn open(
    info: &ConnInfo,
    port: u16,
    hostaddr: Option<std::net::IpAddr>,
) -> io::Result<RawSocket> {
    if hostaddr.is_none() && info.is_unix_socket() {
        let path = info.unix_socket_path(port);
        return within(info.connect_timeout, UnixStream::connect(path)).await.map(RawSocket::Unix);
    }
    let addrs: Vec<std::net::SocketAddr> = match hostaddr {
        Some(ip) => vec![(ip, port).into()],
        None => tokio::net::lookup_host((info.host.as_str(), port)).await?.collect(),
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
    for addr in addrs {
        match within(info.connect_timeout, TcpStream::connect(addr)).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                SockRef::from(&stream)
                    .set_tcp_keepalive(&TcpKeepalive::new().with_time(KEEPALIVE_IDLE))?;
                return Ok(RawSocket::Tcp(stream));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `connect` within `timeout` (none when zero).
async fn within<T>(
    timeout: Duration,
    connect: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    if timeout.is_zero() {
        return connect.await;
    }
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))?
}

impl AsyncRead for RawSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawSocket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            RawSocket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RawSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RawSocket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            RawSocket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawSocket::Tcp(s) => Pin::new(s).poll_flush(cx),
            RawSocket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RawSocket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            RawSocket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RawSocket::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            RawSocket::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            RawSocket::Tcp(s) => s.is_write_vectored(),
            RawSocket::Unix(s) => s.is_write_vectored(),
        }
    }
}
