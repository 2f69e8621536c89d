//! What the Rust client parses of a server's bytes (`hubs_client::__fuzz`): negotiate
//! answers, event-stream bodies, and what a transport delivers after the handshake
//! request (the handshake answer, then hub messages, through the session with stateful
//! reconnect's accounting). No panic, no hang, and an event stream reads the same however
//! it is chunked and never yields more than it was given.
//!
//! Input: a control byte, then the server's bytes. The control byte's low two bits pick
//! the parser; the others pick options (protocol, stateful reconnect, event-stream
//! framing) and the chunk size, 1 to 16 bytes or everything at once.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use hubs_client::__fuzz;
use hubs_protocol::Protocol;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // A paused clock: the handshake timeout and keep-alive cost no real time.
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let chunk = match control >> 4 {
        0 => rest.len().max(1),
        n => usize::from(n),
    };
    match control & 0b11 {
        0 => {
            let _ = __fuzz::negotiate_answer(rest, control & 0b100 != 0);
        }
        1 => {
            let whole = __fuzz::event_stream([rest]);
            assert!(whole.len() <= rest.len(), "more data than bytes read");
            let chunked = __fuzz::event_stream(rest.chunks(chunk));
            assert_eq!(whole, chunked, "the chunking changed what was read");
        }
        _ => {
            let protocol = if control & 0b100 == 0 {
                Protocol::Json
            } else {
                Protocol::MessagePack
            };
            let stateful = control & 0b1000 != 0;
            // Control `0b11`: the bytes are an event stream's body (Server-Sent Events);
            // `0b10`: a long poll's bodies or WebSocket frames, as they are.
            let bytes = if control & 0b11 == 0b11 {
                __fuzz::event_stream(rest.chunks(chunk))
            } else {
                rest.to_vec()
            };
            let chunks = bytes.chunks(chunk).map(Bytes::copy_from_slice).collect();
            let _ = runtime().block_on(__fuzz::received(protocol, stateful, chunks));
        }
    }
});
