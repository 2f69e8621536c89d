//! The server side of the WebSocket framing (RFC 6455 §5), read incrementally.
//!
//! The official SignalR JavaScript client coalesces the hub messages it has queued into
//! one WebSocket message, so a server must accept WebSocket messages as large as the
//! client cares to send (16 MB is common) — yet it must not buffer them: the hub
//! protocol above splits the byte stream into hub messages itself and applies its size
//! limits per hub message. tungstenite buffers whole frames and messages, so the server
//! reads frames with this module instead (tungstenite stays for the HTTP upgrade).
//!
//! * [`FrameDecoder`] is a sans-IO state machine: it turns bytes into [`Event`]s, giving
//!   away the payload of data frames in pieces as they arrive (split off the input without
//!   copying, unmasked in place), and keeping only the small control frames whole.
//! * [`FrameReader`] drives a decoder over the read half of a socket, reading at most
//!   [`READ_CHUNK`] bytes at a time.
//! * [`encode`] writes server frames (never masked).
//!
//! No extension is negotiated, so the RSV bits must be 0.

use std::fmt;
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::utf8::Utf8Validator;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes [`FrameReader`] reads from its socket at a time.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// What [`FrameReader`] reads at once while it holds nothing (between messages): the
/// common small message in one read, and no buffer kept by an idle connection.
const IDLE_READ: usize = 512;

/// The largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The FIN bit of a frame's first byte.
const FIN: u8 = 0x80;
/// The RSV1-3 bits of a frame's first byte.
const RSV: u8 = 0x70;
/// The opcode bits of a frame's first byte.
const OPCODE: u8 = 0x0F;
/// The MASK bit of a frame's second byte.
const MASK: u8 = 0x80;
/// The payload length bits of a frame's second byte.
const LENGTH: u8 = 0x7F;

/// What a client sent, as [`FrameDecoder::decode`] makes it out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A piece of a data message's payload, unmasked, as it arrived. `text` says whether
    /// the message is a text message; `last` is true on the final piece of the message
    /// (FIN frame, all of its payload given).
    ///
    /// The pieces of a message concatenate to its payload. The UTF-8 of a text message is
    /// validated across pieces, but a piece may end inside a character (the next piece
    /// carries the rest).
    Data {
        /// The bytes of this piece.
        payload: Bytes,
        /// Whether the message is a text message (else binary).
        text: bool,
        /// Whether this is the final piece of the message.
        last: bool,
    },
    /// A Ping's payload (the writer answers with a Pong carrying it).
    Ping(Bytes),
    /// A Pong (ignored by the server).
    Pong,
    /// A Close frame: its status code and reason, if any.
    Close(Option<(u16, String)>),
}

/// A client broke the WebSocket protocol; the connection must be closed with
/// [`close_code`](FrameError::close_code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Broke the framing rules: close code 1002.
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// Text that is not UTF-8 (in a text message, or a Close reason): close code 1007.
    #[error("invalid UTF-8 in a WebSocket text message or close reason")]
    InvalidUtf8,
}

impl FrameError {
    /// The status code of the Close frame that answers this error (RFC 6455 §7.4.1).
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            FrameError::Protocol(_) => 1002,
            FrameError::InvalidUtf8 => 1007,
        }
    }
}

/// The opcode of a frame the server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpCode {
    /// A whole text message.
    Text,
    /// A whole binary message.
    Binary,
    /// A Close frame.
    Close,
    /// A Pong frame (the server sends no Pings: the hub protocol keeps the connection
    /// alive with its own).
    Pong,
}

impl OpCode {
    /// The opcode's value on the wire.
    fn bits(self) -> u8 {
        match self {
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Pong => 0xA,
        }
    }
}

/// Appends one whole frame (FIN set) with this opcode and payload to `out`.
///
/// Server frames are not masked. The caller keeps control frames (Close, Ping, Pong) to
/// 125 bytes of payload.
pub(crate) fn encode(out: &mut BytesMut, opcode: OpCode, payload: &[u8]) {
    out.reserve(10 + payload.len());
    out.put_u8(FIN | opcode.bits());
    let len = payload.len();
    if len <= MAX_CONTROL_PAYLOAD {
        // The length fits the 7 bits of the second byte (the check makes the cast exact).
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.extend_from_slice(payload);
}

/// The payload of a Close frame: the code, then the reason.
///
/// The reason is cut (at a character boundary) to 123 bytes, so that the payload fits in
/// a control frame.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

/// Turns the bytes a client sends into [`Event`]s, without doing any IO.
///
/// The payload of data frames is given away in pieces as it arrives, so the decoder and
/// its input never hold more than what was read plus one control frame (at most 131
/// bytes). After an error, the decoder must not be used again.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder {
    /// Where in the byte stream the decoder is.
    state: State,
    /// The data message in progress: from the header of its first frame to the end of
    /// its last frame.
    message: Option<Message>,
}

/// Where in the byte stream a [`FrameDecoder`] is.
#[derive(Debug, Default)]
enum State {
    /// Before a frame header.
    #[default]
    Header,
    /// Inside the payload of a data frame.
    Payload {
        /// The bytes of the payload still to come.
        remaining: u64,
        /// The frame's masking key.
        mask: [u8; 4],
        /// The offset of the next payload byte in the frame, modulo 4 (the index of the
        /// mask byte it is unmasked with).
        mask_offset: usize,
        /// Whether the frame is the last of its message.
        fin: bool,
    },
}

/// A data message in progress.
#[derive(Debug)]
struct Message {
    /// Whether it is a text message.
    text: bool,
    /// The UTF-8 validation of a text message, carried across pieces.
    utf8: Utf8Validator,
}

/// A frame header, parsed.
struct Header {
    /// The FIN bit.
    fin: bool,
    /// The opcode.
    opcode: u8,
    /// The masking key.
    mask: [u8; 4],
    /// The payload length.
    len: u64,
    /// The length of the header itself, in bytes.
    size: usize,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Takes what it can from `input` and returns the next event; `Ok(None)` when it
    /// needs more bytes.
    ///
    /// Payload pieces are split off `input` (without copying, unmasked in place), so
    /// nothing larger than what was read is ever held. A data frame with an empty payload
    /// yields an event only when it is the last frame of its message (an empty message,
    /// or the end of a fragmented one).
    pub(crate) fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Event>, FrameError> {
        loop {
            match self.state {
                State::Header => {
                    let Some(header) = parse_header(input)? else {
                        return Ok(None);
                    };
                    if header.opcode >= 0x8 {
                        return self.control_frame(input, &header);
                    }
                    self.start_data_frame(input, &header)?;
                }
                State::Payload {
                    remaining,
                    mask,
                    mask_offset,
                    fin,
                } => {
                    if remaining == 0 {
                        // Only an empty frame gets here: a piece that ends a frame
                        // moves on to the next header itself.
                        self.state = State::Header;
                        if fin {
                            return self.data_piece(Bytes::new(), true).map(Some);
                        }
                        continue;
                    }
                    if input.is_empty() {
                        return Ok(None);
                    }
                    // The cast back is exact: the minimum is at most `input.len()`.
                    let n = remaining.min(input.len() as u64) as usize;
                    let mut piece = input.split_to(n);
                    unmask(&mut piece, mask, mask_offset);
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::Header
                    } else {
                        State::Payload {
                            remaining,
                            mask,
                            mask_offset: (mask_offset + n) % 4,
                            fin,
                        }
                    };
                    return self
                        .data_piece(piece.freeze(), fin && remaining == 0)
                        .map(Some);
                }
            }
        }
    }

    /// Whether the decoder is between messages: no frame or message is half read.
    fn is_idle(&self) -> bool {
        matches!(self.state, State::Header) && self.message.is_none()
    }

    /// Consumes a whole control frame from `input`, its header already parsed; `Ok(None)`
    /// (consuming nothing) until all of it has arrived.
    fn control_frame(
        &mut self,
        input: &mut BytesMut,
        header: &Header,
    ) -> Result<Option<Event>, FrameError> {
        // `parse_header` checked that the payload is at most 125 bytes.
        let len = header.len as usize;
        if input.len() < header.size + len {
            return Ok(None);
        }
        input.advance(header.size);
        let mut payload = input.split_to(len);
        unmask(&mut payload, header.mask, 0);
        let event = match header.opcode {
            0x8 => Event::Close(parse_close(&payload)?),
            // Copied, so that a queued Pong does not hold on to the read buffer.
            0x9 => Event::Ping(Bytes::copy_from_slice(&payload)),
            _ => Event::Pong,
        };
        Ok(Some(event))
    }

    /// Consumes the header of a data frame (parsed already) from `input`, and checks it
    /// against the message in progress.
    fn start_data_frame(
        &mut self,
        input: &mut BytesMut,
        header: &Header,
    ) -> Result<(), FrameError> {
        match (header.opcode, &self.message) {
            (0x0, None) => {
                return Err(FrameError::Protocol("continuation frame without a message"));
            }
            (0x0, Some(_)) => {}
            (_, Some(_)) => {
                return Err(FrameError::Protocol(
                    "new message inside a fragmented message",
                ));
            }
            (opcode, None) => {
                self.message = Some(Message {
                    text: opcode == 0x1,
                    utf8: Utf8Validator::default(),
                });
            }
        }
        input.advance(header.size);
        self.state = State::Payload {
            remaining: header.len,
            mask: header.mask,
            mask_offset: 0,
            fin: header.fin,
        };
        Ok(())
    }

    /// Makes the event of a piece of the message in progress, validating its UTF-8 in a
    /// text message; `last` ends the message.
    fn data_piece(&mut self, payload: Bytes, last: bool) -> Result<Event, FrameError> {
        // A data frame's header always sets the message.
        let Some(message) = self.message.as_mut() else {
            return Err(FrameError::Protocol("data without a message"));
        };
        let text = message.text;
        if text {
            message
                .utf8
                .feed(&payload)
                .map_err(|_| FrameError::InvalidUtf8)?;
            if last {
                message.utf8.finish().map_err(|_| FrameError::InvalidUtf8)?;
            }
        }
        if last {
            self.message = None;
        }
        Ok(Event::Data {
            payload,
            text,
            last,
        })
    }
}

/// Parses the frame header at the start of `input` without consuming it, checking the
/// rules that do not depend on the message in progress; `Ok(None)` until all of it has
/// arrived.
fn parse_header(input: &[u8]) -> Result<Option<Header>, FrameError> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    let fin = first & FIN != 0;
    let opcode = first & OPCODE;
    if first & RSV != 0 {
        return Err(FrameError::Protocol(
            "reserved bits set without an extension",
        ));
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(FrameError::Protocol("unknown opcode"));
    }
    if second & MASK == 0 {
        return Err(FrameError::Protocol("unmasked client frame"));
    }
    let short_len = second & LENGTH;
    if opcode >= 0x8 {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if usize::from(short_len) > MAX_CONTROL_PAYLOAD {
            return Err(FrameError::Protocol("control frame payload over 125 bytes"));
        }
    }
    let (len, len_size) = match short_len {
        126 => match input.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 2),
            _ => return Ok(None),
        },
        127 => match input
            .get(2..10)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        {
            Some(bytes) => (u64::from_be_bytes(bytes), 8),
            None => return Ok(None),
        },
        len => (u64::from(len), 0),
    };
    if len >> 63 != 0 {
        return Err(FrameError::Protocol(
            "64-bit payload length with the top bit set",
        ));
    }
    let mask_at = 2 + len_size;
    let Some(mask) = input
        .get(mask_at..mask_at + 4)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
    else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        size: mask_at + 4,
    }))
}

/// Parses the (unmasked) payload of a Close frame: empty, or a status code and a UTF-8
/// reason.
fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("close payload of 1 byte")),
        [high, low, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::InvalidUtf8)?;
            Ok(Some((u16::from_be_bytes([*high, *low]), reason.to_owned())))
        }
    }
}

/// XORs `data` with the masking key (RFC 6455 §5.3), `data` starting at byte `offset` of
/// its frame's payload.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    // The key as it lines up with `data`, twice over for 8 bytes at a time.
    let key: [u8; 8] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let word = u64::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= key;
    }
}

/// Reads [`Event`]s from the read half of a socket, with a bounded buffer.
pub(crate) struct FrameReader<R> {
    /// The read half of the socket.
    io: R,
    /// Bytes read and not decoded yet: at most [`READ_CHUNK`] (the leftover given to
    /// [`with_leftover`](Self::with_leftover) aside).
    buf: BytesMut,
    /// The framing state.
    decoder: FrameDecoder,
    /// Set after an error, a Close or the end of the stream.
    done: bool,
}

impl<R> fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buf.len())
            .field("decoder", &self.decoder)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of the frames that `io` carries from its start.
    #[cfg(test)]
    pub(crate) fn new(io: R) -> Self {
        Self::with_leftover(io, Bytes::new())
    }

    /// Like `new`, with bytes already read from the socket (e.g. left over after the HTTP
    /// upgrade).
    pub(crate) fn with_leftover(io: R, leftover: Bytes) -> Self {
        Self {
            io,
            buf: BytesMut::from(leftover),
            decoder: FrameDecoder::new(),
            done: false,
        }
    }

    /// The next event; `None` at a clean end of the stream (between messages).
    ///
    /// The end of the stream inside a frame, or between the frames of a fragmented
    /// message, is an [`io::ErrorKind::UnexpectedEof`] error. Framing errors are
    /// [`io::ErrorKind::InvalidData`] errors wrapping the [`FrameError`] (downcast it with
    /// `get_ref().and_then(|e| e.downcast_ref::<FrameError>())` for the close code).
    /// After an error or a Close, every further call returns `None`.
    ///
    /// Reads at most [`READ_CHUNK`] bytes at a time, and the buffer never holds more.
    /// Cancel safe: only the socket read is awaited, and all state lives in `self`.
    pub(crate) async fn next(&mut self) -> Option<io::Result<Event>> {
        if self.done {
            return None;
        }
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(event)) => {
                    self.done = matches!(event, Event::Close(_));
                    return Some(Ok(event));
                }
                Ok(None) => {}
                Err(error) => {
                    self.done = true;
                    return Some(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
                }
            }
            // The decoder wants more only with less than a control frame left in `buf`.
            let read = if self.buf.is_empty() {
                // Between messages, maybe idle for long: no buffer is held while waiting
                // (a connection would keep READ_CHUNK bytes for nothing); what a small
                // read brings is copied out.
                self.buf = BytesMut::new();
                let mut small = [0u8; IDLE_READ];
                let read = self.io.read(&mut small).await;
                if let Ok(n) = read {
                    self.buf.extend_from_slice(&small[..n]);
                }
                read
            } else {
                let room = READ_CHUNK.saturating_sub(self.buf.len()).max(1);
                self.buf.reserve(room);
                self.io.read_buf(&mut (&mut self.buf).limit(room)).await
            };
            match read {
                Ok(0) => {
                    self.done = true;
                    if self.buf.is_empty() && self.decoder.is_idle() {
                        return None;
                    }
                    return Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "WebSocket stream ended inside a message",
                    )));
                }
                Ok(_) => {}
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
