//! The handshake: the client names its protocol, the server accepts or refuses it.

use bytes::BytesMut;
use futures_util::StreamExt;

use crate::connection::transport::{Capabilities, Incoming};
use crate::hub::options::HubOptions;
use hubs_protocol::wire;
use hubs_protocol::{DecodeError, HandshakeRequest, Protocol, TransferFormat};

/// Why there is no protocol to speak.
pub(crate) enum Refusal {
    /// Answer the client with this error, then close.
    Answer(String),
    /// The client went away (or its transport failed) before the handshake completed.
    Gone,
}

/// Reads the handshake; returns the protocol and whatever arrived after it.
pub(crate) async fn read(
    options: &HubOptions,
    incoming: &mut Incoming,
    capabilities: Capabilities,
) -> Result<(Protocol, BytesMut), Refusal> {
    let mut buf = BytesMut::new();
    let deadline = tokio::time::sleep(options.handshake_timeout);
    tokio::pin!(deadline);
    let request = loop {
        match HandshakeRequest::decode(&mut buf, options.max_message_size) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(DecodeError::TooLarge { .. }) => {
                return Err(Refusal::Answer(wire::HANDSHAKE_CANCELED.to_owned()));
            }
            Err(error) => {
                let mut text = wire::HANDSHAKE_FAILED.to_owned();
                if options.detailed_errors {
                    text.push_str(" InvalidDataException: ");
                    text.push_str(&error.to_string());
                }
                return Err(Refusal::Answer(text));
            }
        }
        tokio::select! {
            chunk = incoming.next() => match chunk {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => return Err(Refusal::Gone),
            },
            () = &mut deadline => return Err(Refusal::Answer(wire::HANDSHAKE_CANCELED.to_owned())),
        }
    };
    let name = request.protocol;
    let Some(protocol) = Protocol::from_name(&name).filter(|p| options.protocols.contains(p))
    else {
        return Err(Refusal::Answer(wire::protocol_not_supported(&name)));
    };
    if request.version > Protocol::MAX_VERSION {
        return Err(Refusal::Answer(wire::protocol_version_not_supported(
            &name,
            request.version,
        )));
    }
    if protocol.transfer_format() == TransferFormat::Binary && !capabilities.binary {
        return Err(Refusal::Answer(wire::transfer_format_not_supported(&name)));
    }
    Ok((protocol, buf))
}
