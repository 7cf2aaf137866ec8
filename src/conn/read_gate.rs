//! Holding back a session's socket while a very large row is out.
//!
//! tokio-postgres reads whole messages ahead of its consumer, each into a
//! fresh buffer while the one before is still held: with 100 MiB rows, two
//! or three rows sit in memory at once. A pause set by the consumer when a
//! row arrives comes too late: in the same turn the connection has already
//! read on into the next row. So the stream under the connection reads the
//! protocol's message framing itself ([`Gated`]): while a COPY's large rows
//! are counted ([`ReadGate::count_large_rows`]), it stops reading at the end
//! of each CopyData message of [`LARGE_ROW`] or more, and reads on only once
//! the consumer has let go of that row ([`LargeRows::release`]). The server
//! then waits on the socket's flow control, and the next row is read into the
//! buffer the last one left.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// A row at least this large (a CopyData message's payload) is held back.
/// Smaller rows keep the read-ahead, which overlaps reading and writing.
pub const LARGE_ROW: usize = 8 << 20;

/// CopyData, the message a `COPY ... TO STDOUT` sends each row in.
const COPY_DATA: u8 = b'd';

/// What one session's stream and its COPY consumer share.
#[derive(Default)]
pub struct ReadGate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// Whether large rows are counted (a COPY's consumer releases them).
    counting: bool,
    /// Large rows read and not yet released: the stream reads nothing while
    /// there is one.
    held: usize,
    /// The connection's read, woken when the last held row is released.
    waker: Option<Waker>,
}

impl ReadGate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the large rows of the COPY about to start until the returned
    /// guard is dropped. Call it before the COPY statement is sent, so that
    /// each of its rows is counted; nothing may wait on the session for
    /// anything else while the guard holds a row.
    pub fn count_large_rows(self: &Arc<Self>) -> LargeRows {
        let mut s = self.state();
        s.counting = true;
        s.held = 0;
        LargeRows { gate: self.clone() }
    }

    /// Whether the stream must wait; if so, its waker is kept.
    fn must_wait(&self, cx: &Context<'_>) -> bool {
        let mut s = self.state();
        if s.counting && s.held > 0 {
            s.waker = Some(cx.waker().clone());
            return true;
        }
        false
    }

    fn is_counting(&self) -> bool {
        self.state().counting
    }

    fn read_large_row(&self) {
        let mut s = self.state();
        if s.counting {
            s.held += 1;
        }
    }

    /// Releases `rows` held rows (all of them and stops counting, for `None`).
    fn release(&self, rows: Option<usize>) {
        let waker = {
            let mut s = self.state();
            match rows {
                Some(n) => s.held = s.held.saturating_sub(n),
                None => (s.counting, s.held) = (false, 0),
            }
            if s.held == 0 { s.waker.take() } else { None }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Large rows of one COPY being counted; dropping it releases them all.
#[must_use = "large rows are counted only while this lives"]
pub struct LargeRows {
    gate: Arc<ReadGate>,
}

impl LargeRows {
    /// The consumer let go of `rows` large rows it received.
    pub fn release(&self, rows: usize) {
        if rows > 0 {
            self.gate.release(Some(rows));
        }
    }
}

impl Drop for LargeRows {
    fn drop(&mut self) {
        self.gate.release(None);
    }
}

/// A stream that follows the server's message framing in what it reads
/// (see the module's documentation).
pub struct Gated<S> {
    inner: S,
    gate: Arc<ReadGate>,
    /// Set once TLS runs over this stream: its bytes are then encrypted, and
    /// the TLS stream above follows the framing instead.
    passthrough: bool,
    /// Bytes still to pass before the first message (the one-byte answer to
    /// a TLS request).
    skip: usize,
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current message not read yet.
    body_left: usize,
    /// Whether the current message is a large row being counted.
    large: bool,
}

impl<S> Gated<S> {
    /// `skip`: bytes the server sends before its first message (1 when a TLS
    /// request is sent first).
    pub fn new(inner: S, gate: Arc<ReadGate>, skip: usize) -> Self {
        Gated {
            inner,
            gate,
            passthrough: false,
            skip,
            header: [0; 5],
            header_len: 0,
            body_left: 0,
            large: false,
        }
    }

    /// Follows the framing through bytes just read.
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
            } else if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                if self.body_left == 0 && self.large {
                    self.large = false;
                    self.gate.read_large_row();
                }
            } else {
                let n = (5 - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == 5 {
                    self.header_len = 0;
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]) as usize;
                    // The length counts itself.
                    self.body_left = len.saturating_sub(4);
                    self.large = self.header[0] == COPY_DATA
                        && self.body_left >= LARGE_ROW
                        && self.gate.is_counting();
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gated<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.passthrough {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.gate.must_wait(cx) {
            return Poll::Pending;
        }
        if this.large && buf.remaining() > this.body_left {
            // Not a byte past the large row: what follows stays in the socket.
            let mut part = buf.take(this.body_left);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
            let n = part.filled().len();
            let start = buf.filled().len();
            // SAFETY: `part` is `buf`'s unfilled part, and the read filled
            // (so initialized) its first `n` bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            this.scan(&buf.filled()[start..]);
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.scan(&buf.filled()[start..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gated<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: TlsStream + Unpin> TlsStream for Gated<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// A TLS connector whose stream follows the framing of the plain text: the
/// socket's own [`Gated`] passes the encrypted bytes through.
pub struct GatedTls<T> {
    pub tls: T,
    pub gate: Arc<ReadGate>,
}

impl<S, T> TlsConnect<Gated<S>> for GatedTls<T>
where
    T: TlsConnect<Gated<S>> + 'static,
    T::Future: Send + 'static,
    T::Stream: Unpin,
{
    type Stream = Gated<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, mut stream: Gated<S>) -> Self::Future {
        stream.passthrough = true;
        let GatedTls { tls, gate } = self;
        let handshake = tls.connect(stream);
        Box::pin(async move { Ok(Gated::new(handshake.await?, gate, 0)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend message: tag, length (counting itself), payload.
    fn message(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(payload.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    /// Reads `gated` into a buffer of `size` bytes once, without blocking:
    /// the bytes read, or `None` when the read must wait.
    fn read_once<S: AsyncRead + Unpin>(gated: &mut Gated<S>, size: usize) -> Option<Vec<u8>> {
        let mut space = vec![0u8; size];
        let mut buf = ReadBuf::new(&mut space);
        let waker = futures::task::noop_waker();
        match Pin::new(gated).poll_read(&mut Context::from_waker(&waker), &mut buf) {
            Poll::Ready(r) => {
                r.unwrap();
                Some(buf.filled().to_vec())
            }
            Poll::Pending => None,
        }
    }

    /// The stream the server would send: the answer to a TLS request, a
    /// small row, a large row, a small row.
    fn server_bytes() -> Vec<u8> {
        let mut bytes = vec![b'N'];
        bytes.extend(message(b'd', b"1,a\n"));
        bytes.extend(message(b'd', &vec![b'x'; LARGE_ROW]));
        bytes.extend(message(b'd', b"3,c\n"));
        bytes
    }

    /// Where the large row of [`server_bytes`] ends.
    const LARGE_END: usize = 1 + (5 + 4) + (5 + LARGE_ROW);

    /// A stream over `bytes` whose gate counts large rows, and the count.
    fn counted(bytes: &[u8]) -> (LargeRows, Gated<&[u8]>) {
        let gate = Arc::new(ReadGate::default());
        (gate.count_large_rows(), Gated::new(bytes, gate, 1))
    }

    /// Reads on into `got`, in large reads, until the large row's end.
    fn read_to_the_large_row_end(gated: &mut Gated<&[u8]>, got: &mut Vec<u8>) {
        while got.len() < LARGE_END {
            got.extend(read_once(gated, 4 * LARGE_ROW).expect("up to the large row's end"));
        }
    }

    #[test]
    fn reads_stop_after_a_large_row_until_it_is_released() {
        let bytes = server_bytes();
        let (rows, mut gated) = counted(&bytes);
        // Read in pieces that split headers, as a socket does.
        let mut read = Vec::new();
        while let Some(piece) = read_once(&mut gated, 3) {
            read.extend(piece);
            if read.len() > 100 {
                break;
            }
        }
        // The first read into a large buffer ends exactly at the large row's end.
        let mut got = read;
        read_to_the_large_row_end(&mut gated, &mut got);
        assert_eq!(got.len(), LARGE_END, "not a byte past the large row");
        assert_eq!(read_once(&mut gated, 1024), None, "held until released");
        rows.release(1);
        let rest = read_once(&mut gated, 1024).expect("reads on once released");
        got.extend(rest);
        assert_eq!(got, bytes);
    }

    #[test]
    fn nothing_is_held_unless_counted() {
        let bytes = server_bytes();
        let mut gated = Gated::new(&bytes[..], Arc::new(ReadGate::default()), 1);
        let mut got = Vec::new();
        while got.len() < bytes.len() {
            got.extend(read_once(&mut gated, 4 * LARGE_ROW).expect("never held"));
        }
        assert_eq!(got, bytes);
    }

    #[test]
    fn dropping_the_count_releases_every_row() {
        let bytes = server_bytes();
        let (rows, mut gated) = counted(&bytes);
        let mut got = Vec::new();
        read_to_the_large_row_end(&mut gated, &mut got);
        assert_eq!(read_once(&mut gated, 1024), None);
        drop(rows);
        got.extend(read_once(&mut gated, 1024).expect("released"));
        assert_eq!(got, bytes);
    }
}
