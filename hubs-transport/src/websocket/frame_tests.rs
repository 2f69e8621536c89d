//! Tests of the frame codec: decoding in slices of any size, the RFC's rules, encoding, and
//! the reader over a socket.

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
