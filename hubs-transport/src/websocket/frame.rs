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
            message.utf8.feed(&payload)?;
            if last {
                message.utf8.finish()?;
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

/// Validates UTF-8 given in pieces that may split a character.
#[derive(Debug, Default)]
struct Utf8Validator {
    /// The start of a character the last piece ended inside (at most 3 bytes).
    partial: [u8; 4],
    /// How many bytes of `partial` are set.
    partial_len: usize,
}

impl Utf8Validator {
    /// Validates the next piece.
    fn feed(&mut self, mut piece: &[u8]) -> Result<(), FrameError> {
        if self.partial_len > 0 {
            // Complete the character the last piece ended inside.
            let width = utf8_width(self.partial[0]);
            let take = width.saturating_sub(self.partial_len).min(piece.len());
            let end = self.partial_len + take;
            self.partial[self.partial_len..end].copy_from_slice(&piece[..take]);
            match std::str::from_utf8(&self.partial[..end]) {
                Ok(_) => self.partial_len = 0,
                Err(error) if error.error_len().is_none() => {
                    // Still incomplete: the piece is used up.
                    self.partial_len = end;
                    return Ok(());
                }
                Err(_) => return Err(FrameError::InvalidUtf8),
            }
            piece = &piece[take..];
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_none() => {
                // The piece ends inside a character (at most 3 bytes of it).
                let tail = &piece[error.valid_up_to()..];
                let partial = self
                    .partial
                    .get_mut(..tail.len())
                    .ok_or(FrameError::InvalidUtf8)?;
                partial.copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(FrameError::InvalidUtf8),
        }
    }

    /// Checks that the text does not end inside a character.
    fn finish(&self) -> Result<(), FrameError> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(FrameError::InvalidUtf8)
        }
    }
}

/// The length of the UTF-8 sequence that starts with `lead`, as its high bits tell (an
/// invalid lead byte is caught by the validation itself).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0x80..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
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
mod tests {
    use super::*;

    /// The masking key of the test frames.
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame with this first byte (FIN, RSV, opcode).
    fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(&mut out, OpCode::Binary, payload);
        let mut frame = out.to_vec();
        frame[0] = first;
        frame[1] |= MASK;
        let header = frame.len() - payload.len();
        let mut masked = payload.to_vec();
        unmask(&mut masked, KEY, 0);
        frame.truncate(header);
        frame.extend_from_slice(&KEY);
        frame.extend_from_slice(&masked);
        frame
    }

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        raw_frame(if fin { FIN } else { 0 } | opcode, payload)
    }

    /// Decodes `bytes` fed `step` bytes at a time, until the input runs out.
    fn decode_all(bytes: &[u8], step: usize) -> Result<Vec<Event>, FrameError> {
        let mut decoder = FrameDecoder::new();
        let mut input = BytesMut::new();
        let mut events = Vec::new();
        for slice in bytes.chunks(step) {
            input.extend_from_slice(slice);
            while let Some(event) = decoder.decode(&mut input)? {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The concatenated payload of the data events, and whether the last one ended it.
    fn reassemble(events: &[Event]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut ended = false;
        for event in events {
            if let Event::Data { payload, last, .. } = event {
                assert!(!ended, "data after the last piece");
                out.extend_from_slice(payload);
                ended = *last;
            }
        }
        (out, ended)
    }

    #[test]
    fn small_text_frame() {
        let events = decode_all(&frame(true, 0x1, b"Hello"), 64).unwrap();
        assert_eq!(
            events,
            [Event::Data {
                payload: Bytes::from_static(b"Hello"),
                text: true,
                last: true,
            }]
        );
    }

    #[test]
    fn empty_message() {
        let events = decode_all(&frame(true, 0x2, b""), 64).unwrap();
        assert_eq!(
            events,
            [Event::Data {
                payload: Bytes::new(),
                text: false,
                last: true,
            }]
        );
    }

    #[test]
    fn fragments_with_a_ping_between() {
        let mut bytes = frame(false, 0x1, b"one ");
        bytes.extend(frame(false, 0x0, b"two "));
        bytes.extend(frame(true, 0x9, b"ping!"));
        bytes.extend(frame(true, 0x0, b"three"));
        bytes.extend(frame(true, 0xA, b""));
        let events = decode_all(&bytes, bytes.len()).unwrap();
        let data = |payload: &'static [u8], last| Event::Data {
            payload: Bytes::from_static(payload),
            text: true,
            last,
        };
        assert_eq!(
            events,
            [
                data(b"one ", false),
                data(b"two ", false),
                Event::Ping(Bytes::from_static(b"ping!")),
                data(b"three", true),
                Event::Pong,
            ]
        );
    }

    #[test]
    fn empty_last_fragment_ends_the_message() {
        let mut bytes = frame(false, 0x2, b"abc");
        bytes.extend(frame(false, 0x0, b""));
        bytes.extend(frame(true, 0x0, b""));
        let events = decode_all(&bytes, 1).unwrap();
        assert_eq!(reassemble(&events), (b"abc".to_vec(), true));
        assert!(
            matches!(events.last(), Some(Event::Data { payload, last: true, .. }) if payload.is_empty())
        );
    }

    #[test]
    fn large_binary_frame_in_slices() {
        let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 + i / 251) as u8).collect();
        let bytes = frame(true, 0x2, &payload);
        for step in [1, 7, 5000] {
            let events = decode_all(&bytes, step).unwrap();
            for event in &events {
                let Event::Data { payload, text, .. } = event else {
                    panic!("unexpected {event:?}");
                };
                assert!(!text);
                assert!(payload.len() <= step, "piece of {} bytes", payload.len());
            }
            let (out, ended) = reassemble(&events);
            assert!(ended);
            assert!(out == payload, "payload differs with step {step}");
        }
    }

    #[test]
    fn utf8_split_across_pieces_and_fragments() {
        let text = "héllo wörld 😀 ✓";
        let bytes = text.as_bytes();
        let mut message = frame(false, 0x1, &bytes[..2]);
        message.extend(frame(false, 0x0, &bytes[2..17]));
        message.extend(frame(true, 0x0, &bytes[17..]));
        for input in [frame(true, 0x1, bytes), message] {
            for step in [1, 2, 3, 5] {
                let events = decode_all(&input, step).unwrap();
                assert_eq!(reassemble(&events), (bytes.to_vec(), true));
            }
        }
    }

    #[test]
    fn invalid_utf8() {
        // A lone continuation byte, an overlong encoding, a surrogate.
        for bad in [&b"ab\x80cd"[..], b"\xC0\xAF", b"\xED\xA0\x80"] {
            for step in [1, 64] {
                let result = decode_all(&frame(true, 0x1, bad), step);
                assert_eq!(result.unwrap_err(), FrameError::InvalidUtf8);
            }
        }
        // The message ends inside a character (split over two fragments).
        let mut bytes = frame(false, 0x1, b"ok \xF0\x9F");
        bytes.extend(frame(true, 0x0, b"\x98"));
        assert_eq!(decode_all(&bytes, 1).unwrap_err(), FrameError::InvalidUtf8);
        // Binary messages are not validated.
        assert!(decode_all(&frame(true, 0x2, b"\xFF"), 64).is_ok());
    }

    #[test]
    fn protocol_errors() {
        let mut unmasked = frame(true, 0x1, b"hi");
        unmasked[1] &= !MASK;
        let mut started = frame(false, 0x1, b"a");
        started.extend(frame(true, 0x2, b"b"));
        let mut long_length = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        long_length.extend_from_slice(&KEY);
        let cases: [(&str, Vec<u8>); 9] = [
            ("unmasked", unmasked),
            ("RSV1", raw_frame(FIN | 0x40 | 0x1, b"hi")),
            ("RSV3", raw_frame(FIN | 0x10 | 0x2, b"hi")),
            ("unknown opcode", frame(true, 0x3, b"")),
            ("continuation without start", frame(true, 0x0, b"x")),
            ("new message inside another", started),
            ("oversized control", frame(true, 0x9, &[0; 126])),
            ("fragmented control", frame(false, 0xA, b"")),
            ("64-bit length top bit", long_length),
        ];
        for (name, bytes) in cases {
            let error = decode_all(&bytes, 1).expect_err(name);
            assert!(
                matches!(error, FrameError::Protocol(_)),
                "{name}: {error:?}"
            );
            assert_eq!(error.close_code(), 1002);
        }
        assert_eq!(FrameError::InvalidUtf8.close_code(), 1007);
    }

    #[test]
    fn close_frames() {
        let events = decode_all(&frame(true, 0x8, &close_payload(1000, "bye")), 1).unwrap();
        assert_eq!(events, [Event::Close(Some((1000, "bye".to_owned())))]);
        let events = decode_all(&frame(true, 0x8, b""), 1).unwrap();
        assert_eq!(events, [Event::Close(None)]);
        let error = decode_all(&frame(true, 0x8, &[0x03]), 1).unwrap_err();
        assert!(matches!(error, FrameError::Protocol(_)));
        let error = decode_all(&frame(true, 0x8, b"\x03\xE8\xFF"), 1).unwrap_err();
        assert_eq!(error, FrameError::InvalidUtf8);
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        assert_eq!(close_payload(1011, "oops"), b"\x03\xF3oops");
        let long = "é".repeat(100);
        let payload = close_payload(1000, &long);
        assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn encode_lengths_and_round_trip() {
        for (opcode, len, header) in [
            (
                OpCode::Binary,
                70_000,
                &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70][..],
            ),
            (OpCode::Text, 200, &[0x81, 0x7E, 0x00, 0xC8][..]),
            (OpCode::Pong, 5, &[0x8A, 0x05][..]),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut out = BytesMut::new();
            encode(&mut out, opcode, &payload);
            assert_eq!(&out[..header.len()], header);
            assert_eq!(&out[header.len()..], &payload[..]);

            // The same frame, masked as a client would send it, decodes to the payload.
            let mut masked = out[..header.len()].to_vec();
            masked[1] |= MASK;
            masked.extend_from_slice(&KEY);
            let mut body = payload.clone();
            unmask(&mut body, KEY, 0);
            masked.extend_from_slice(&body);
            let events = decode_all(&masked, 4096).unwrap();
            if opcode == OpCode::Pong {
                assert_eq!(events, [Event::Pong]);
            } else {
                assert_eq!(reassemble(&events), (payload, true));
            }
        }
    }

    #[test]
    fn unmask_at_any_offset() {
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        unmask(&mut whole, KEY, 0);
        for split in [1, 3, 8, 13, 100] {
            let mut pieces = data.clone();
            let (head, tail) = pieces.split_at_mut(split);
            unmask(head, KEY, 0);
            unmask(tail, KEY, split);
            assert_eq!(pieces, whole);
        }
    }

    #[tokio::test]
    async fn reader_reads_a_16_mib_message_in_chunks() {
        let payload: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        let mut bytes = frame(true, 0x2, &payload);
        bytes.extend(frame(true, 0x8, &close_payload(1000, "")));
        // The first bytes arrive with the upgrade.
        let leftover = Bytes::copy_from_slice(&bytes[..3]);
        let mut reader = FrameReader::with_leftover(&bytes[3..], leftover);
        let mut out = Vec::with_capacity(payload.len());
        let mut ended = false;
        loop {
            let event = reader.next().await.expect("an event").expect("no error");
            assert!(reader.buf.len() <= READ_CHUNK);
            match event {
                Event::Data { payload, last, .. } => {
                    assert!(payload.len() <= READ_CHUNK);
                    out.extend_from_slice(&payload);
                    ended = last;
                }
                Event::Close(close) => {
                    assert_eq!(close, Some((1000, String::new())));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(ended);
        assert!(out == payload);
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn reader_end_of_stream() {
        // Between frames: a clean end.
        let bytes = frame(true, 0x1, b"hi");
        let mut reader = FrameReader::new(&bytes[..]);
        assert!(matches!(
            reader.next().await,
            Some(Ok(Event::Data { last: true, .. }))
        ));
        assert!(reader.next().await.is_none());

        // Inside a frame.
        let mut reader = FrameReader::new(&bytes[..bytes.len() - 1]);
        assert!(matches!(
            reader.next().await,
            Some(Ok(Event::Data { last: false, .. }))
        ));
        let error = reader.next().await.expect("an error").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(reader.next().await.is_none());

        // Inside a header.
        let mut reader = FrameReader::new(&bytes[..3]);
        let error = reader.next().await.expect("an error").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn reader_next_is_cancel_safe() {
        use futures_util::FutureExt;
        use tokio::io::AsyncWriteExt;

        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server);
        let bytes = frame(true, 0x1, "pièce".as_bytes());
        // Half a header arrives: the reader waits, and the future is dropped.
        client.write_all(&bytes[..3]).await.unwrap();
        assert!(reader.next().now_or_never().is_none());
        // The rest of the header and a piece of payload: one piece comes out, then the
        // next call waits again and is dropped.
        client.write_all(&bytes[3..9]).await.unwrap();
        let mut out = Vec::new();
        while let Some(event) = reader.next().now_or_never() {
            let Some(Ok(Event::Data {
                payload,
                last: false,
                ..
            })) = event
            else {
                panic!("unexpected {event:?}");
            };
            out.extend_from_slice(&payload);
        }
        client.write_all(&bytes[9..]).await.unwrap();
        let Some(Ok(Event::Data {
            payload,
            last: true,
            ..
        })) = reader.next().await
        else {
            panic!("no last piece");
        };
        out.extend_from_slice(&payload);
        assert_eq!(out, "pièce".as_bytes());
    }

    #[tokio::test]
    async fn reader_framing_error_carries_the_close_code() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server);
        tokio::io::AsyncWriteExt::write_all(&mut client, &frame(true, 0x1, b"\xFF"))
            .await
            .unwrap();
        let error = reader.next().await.expect("an error").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let code = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<FrameError>())
            .map(FrameError::close_code);
        assert_eq!(code, Some(1007));
        assert!(reader.next().await.is_none());
    }
}
