//! A server WebSocket over an upgraded connection, split in its two directions: frames
//! read in pieces as they arrive ([`FrameReader`], so a WebSocket message of any size
//! costs a bounded buffer), and frames written in batches, where a write fails only when
//! the client has taken nothing for the send timeout (a slow client that keeps reading
//! is never cut by it).

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hubs_core::Frame;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::frame::{FrameError, FrameReader, OpCode, close_payload, encode};

/// The reading side of a socket.
pub(crate) type ReadSide = Box<dyn AsyncRead + Send + Unpin>;
/// The writing side of a socket.
type WriteSide = Box<dyn AsyncWrite + Send + Unpin>;

/// A buffer larger than this after a write is let go, so an idle connection keeps
/// little: a burst's batches allocate their own.
const KEEP_BUFFER: usize = 8 * 1024;

/// An upgraded WebSocket, server side.
pub(crate) struct Socket {
    /// What the client sends.
    pub(crate) reader: FrameReader<ReadSide>,
    /// What the server sends.
    pub(crate) writer: SocketWriter,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").finish_non_exhaustive()
    }
}

impl Socket {
    /// The WebSocket on `io`; writes fail after `send_timeout` without progress.
    pub(crate) fn new<S>(io: S, send_timeout: Duration) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        Self::from_halves(Box::new(read), Box::new(write), Bytes::new(), send_timeout)
    }

    /// The WebSocket on a connection hyper upgraded. Over plain TCP its two directions are
    /// the socket's own halves (no lock between the reader and the writer); over anything
    /// else (TLS) they share the stream.
    pub(crate) fn upgraded(upgraded: hyper::upgrade::Upgraded, send_timeout: Duration) -> Self {
        type Tcp = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
        match upgraded.downcast::<Tcp>() {
            Ok(parts) => {
                let (read, write) = parts.io.into_inner().into_split();
                Self::from_halves(
                    Box::new(read),
                    Box::new(write),
                    parts.read_buf,
                    send_timeout,
                )
            }
            Err(upgraded) => Self::new(hyper_util::rt::TokioIo::new(upgraded), send_timeout),
        }
    }

    fn from_halves(
        read: ReadSide,
        write: WriteSide,
        leftover: Bytes,
        send_timeout: Duration,
    ) -> Self {
        Self {
            reader: FrameReader::with_leftover(read, leftover),
            writer: SocketWriter {
                io: write,
                buf: BytesMut::new(),
                send_timeout,
            },
        }
    }
}

/// The writing half of a [`Socket`]: frames are gathered with [`feed`](Self::feed) and
/// written together by [`flush`](Self::flush).
pub(crate) struct SocketWriter {
    io: WriteSide,
    buf: BytesMut,
    send_timeout: Duration,
}

impl SocketWriter {
    /// Adds a frame of the hub's (text or binary) to the next write.
    pub(crate) fn feed(&mut self, frame: &Frame) {
        let opcode = if frame.binary {
            OpCode::Binary
        } else {
            OpCode::Text
        };
        encode(&mut self.buf, opcode, &frame.bytes);
    }

    /// Adds the answer to a client's Ping to the next write.
    pub(crate) fn feed_pong(&mut self, payload: &[u8]) {
        encode(&mut self.buf, OpCode::Pong, payload);
    }

    /// Bytes gathered for the next write.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes what was gathered.
    ///
    /// # Errors
    ///
    /// The socket's error, or [`io::ErrorKind::TimedOut`] when the client took nothing
    /// for the send timeout.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let written = write_all(&mut self.io, &self.buf, self.send_timeout).await;
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
        written
    }

    /// Writes what was gathered and a Close frame with `code`, then shuts the socket's
    /// writing side; five seconds at most.
    pub(crate) async fn close(&mut self, code: u16) {
        encode(&mut self.buf, OpCode::Close, &close_payload(code, ""));
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            if self.flush().await.is_ok() {
                let _ = self.io.shutdown().await;
            }
        })
        .await;
    }
}

/// Writes all of `buf`, failing only when a write makes no progress for `timeout`.
/// Writes almost always complete at once; a timer is armed only for one that does not
/// (one per write per connection would dominate a broadcast).
async fn write_all(io: &mut WriteSide, mut buf: &[u8], timeout: Duration) -> io::Result<()> {
    while !buf.is_empty() {
        let written = {
            let mut write = std::pin::pin!(io.write(buf));
            match futures_util::poll!(&mut write) {
                std::task::Poll::Ready(written) => written?,
                std::task::Poll::Pending => tokio::time::timeout(timeout, write)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no progress"))??,
            }
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[written..];
    }
    Ok(())
}

/// The close code for a frame that broke the WebSocket rules (1002, or 1007 for text
/// that is not UTF-8); `None` for a read that just failed.
pub(crate) fn violation_code(error: &io::Error) -> Option<u16> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<FrameError>())
        .map(FrameError::close_code)
}
