//! Both hub protocols' decoders on arbitrary bytes in arbitrary chunkings: no panic, no
//! endless loop, and every message they accept encodes and decodes back to itself.
#![no_main]

use hubs_protocol::{HubMessage, Protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let protocol = if control & 1 == 0 {
        Protocol::Json
    } else {
        Protocol::MessagePack
    };
    // The chunk size comes from the control byte: 1 to 64 bytes, or everything at once.
    let chunk = match control >> 1 {
        0 => rest.len().max(1),
        n => usize::from(n % 64) + 1,
    };
    let mut decoder = protocol.decoder().with_max_message_size(Some(32 * 1024));
    let mut accepted = Vec::new();
    'feed: for piece in rest.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => accepted.push(message),
                Ok(None) => break,
                // Recoverable per-message errors: keep going, as the server does.
                Err(error) if !error.is_fatal() => {}
                Err(_) => break 'feed,
            }
        }
    }
    for message in accepted {
        roundtrip(protocol, &message);
    }
});

fn roundtrip(protocol: Protocol, message: &HubMessage) {
    let mut out = Vec::new();
    if protocol.encode(message, &mut out).is_err() {
        return;
    }
    let mut decoder = protocol.decoder();
    decoder.push(&out);
    let again = decoder
        .next_message()
        .expect("what we encode decodes")
        .expect("a whole message");
    let mut second = Vec::new();
    protocol.encode(&again, &mut second).expect("encodes again");
    assert_eq!(out, second, "encoding is stable across a round trip");
}
