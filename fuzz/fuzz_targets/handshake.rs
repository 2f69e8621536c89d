//! The handshake request and response parsers on arbitrary bytes: no panic, and a
//! request that parses is re-encoded to something that parses the same.
#![no_main]

use bytes::BytesMut;
use hubs_protocol::{HandshakeRequest, HandshakeResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    if let Ok(Some(request)) = HandshakeRequest::decode(&mut buf, Some(32 * 1024)) {
        let mut out = Vec::new();
        request.encode(&mut out);
        let mut again = BytesMut::from(&out[..]);
        let decoded = HandshakeRequest::decode(&mut again, None)
            .expect("what we encode decodes")
            .expect("a whole handshake");
        assert_eq!(decoded.protocol, request.protocol);
        assert_eq!(decoded.version, request.version);
    }
    let mut buf = BytesMut::from(data);
    let _ = HandshakeResponse::decode(&mut buf, Some(32 * 1024));
});
