//! One connection, from handshake to teardown. Transport-agnostic: bytes come in as a
//! stream and frames go out through the connection's queue.
//!
//! * [`handshake`]: the protocol the client asks for.
//! * [`reader`]: the read loop, which never waits on one invocation.
//! * [`invocation`]: each invocation's one owner, from read to last message.
//! * [`keep_alive`]: Pings and the client timeout.
//! * [`teardown`]: why it ended and what is released, in order.
//! * [`handle`] and [`results`]: the sending end routing uses, and client results.

mod conclusion;
mod end;
mod handle;
mod handshake;
mod invocation;
mod keep_alive;
mod outbound;
mod reader;
mod results;
mod streams;
mod teardown;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use end::EndHandle;
pub use handle::{ConnectionClosed, ConnectionHandle, TrySendError};
pub use outbound::{Frame, OutboundQueue, Outgoing, TryRecvError};
pub use results::ClientResultError;
pub(crate) use streams::Streams;

use crate::context::{ConnectionState, Context, Items};
use crate::hub::Hub;
use crate::identity::User;
use crate::runtime::HubRuntime;
use crate::stream::{UploadBudget, UploadLimits};
use crate::transport::{Connected, TransportConnection};
use handshake::Refusal;
use hubs_protocol::wire;
use hubs_protocol::{HandshakeResponse, Protocol, TransferFormat};
use reader::Reader;
use teardown::{Ending, tear_down};

pub(crate) fn start<H: Hub>(
    runtime: Arc<HubRuntime<H>>,
    connection: TransportConnection,
) -> Connected {
    let (tx, rx) = outbound::outbound_queue(runtime.options.outbound_budget);
    let finished = CancellationToken::new();
    // Shutting the hub down ends every connection.
    let end = EndHandle::child_of(&runtime.shutdown);
    // OpenTelemetry's RPC conventions: rpc.system, rpc.service.
    let span = tracing::info_span!(
        "signalr.connection",
        rpc.system = "signalr",
        rpc.service = runtime.name(),
        signalr.connection.id = %connection.connection_id,
        signalr.transport = connection.transport.name(),
        signalr.protocol = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
    );
    // Boxed: a future keeps room for what it was given until it ends, and the connection
    // needs its parts only while it starts.
    let connection = Box::new(connection);
    let task = run(runtime, connection, tx, end.clone(), finished.clone()).instrument(span);
    Connected {
        outgoing: rx,
        finished,
        end,
        task: Box::pin(task),
    }
}

/// The handshake's answer, in a frame of the protocol's kind (a MessagePack connection
/// gets its JSON handshake answer in a binary frame).
fn handshake_frame(response: &HandshakeResponse, protocol: Option<Protocol>) -> Frame {
    let mut out = Vec::new();
    response.encode(&mut out);
    Frame {
        bytes: out.into(),
        binary: protocol.is_some_and(|p| p.transfer_format() == TransferFormat::Binary),
        sequenced: false,
    }
}

/// An established connection: what its read loop and teardown need.
struct Established<H: Hub> {
    cx: Context<H>,
    incoming: crate::transport::Incoming,
    capabilities: crate::transport::Capabilities,
    protocol: Protocol,
    /// What came after the handshake in its chunk.
    leftover: bytes::BytesMut,
    /// Ends the connection when its credential expires.
    expiry: Option<tokio::task::JoinHandle<()>>,
}

async fn run<H: Hub>(
    runtime: Arc<HubRuntime<H>>,
    connection: Box<TransportConnection>,
    tx: OutboundQueue,
    end: EndHandle,
    finished: CancellationToken,
) {
    // In steps whose state does not outlive them: the handshake's, the read loop's, the
    // teardown's.
    let Some(Established {
        cx,
        mut incoming,
        capabilities,
        protocol,
        leftover,
        expiry,
    }) = establish(&runtime, connection, tx, end, &finished).await
    else {
        return;
    };
    let options = &runtime.options;

    // The hook runs until it returns or the connection ends (its transport may go).
    let hook = tokio::select! {
        hook = AssertUnwindSafe(crate::filter::on_connected(&cx)).catch_unwind() => Some(hook),
        () = cx.handle().end_handle().ended() => None,
    };
    let ending = match hook {
        None => Ending::signalled(
            cx.handle().end_handle().reason(),
            runtime.shutdown.is_cancelled(),
        ),
        Some(Ok(Ok(()))) => {
            // Built in a call: a decoder named here would keep its room in this future
            // beside the Reader that owns it.
            let decoder = |leftover: &[u8]| {
                let mut decoder = protocol
                    .decoder()
                    .with_max_message_size(options.max_message_size);
                decoder.push(leftover);
                decoder
            };
            let mut reader = Reader::new(&cx, capabilities, decoder(&leftover));
            reader.run(&mut incoming).await
        }
        Some(Ok(Err(error))) => Ending::Error {
            text: wire::closed_with_error(Some(("HubException", error.message()))),
            allow_reconnect: false,
        },
        Some(Err(_)) => {
            tracing::error!("on_connected panicked");
            Ending::Error {
                text: wire::closed_with_error(
                    options
                        .detailed_errors
                        .then_some(("Panic", "on_connected panicked")),
                ),
                allow_reconnect: false,
            }
        }
    };
    if let Some(expiry) = expiry {
        expiry.abort();
    }
    tear_down(&runtime, cx, ending, &finished).await;
}

/// The handshake, then the connection's registration; `None` when the handshake failed
/// or the connection ended first (it is then over: `finished` is cancelled).
async fn establish<H: Hub>(
    runtime: &Arc<HubRuntime<H>>,
    connection: Box<TransportConnection>,
    tx: OutboundQueue,
    end: EndHandle,
    finished: &CancellationToken,
) -> Option<Established<H>> {
    let TransportConnection {
        connection_id,
        request,
        transport,
        capabilities,
        mut incoming,
    } = *connection;
    let options = &runtime.options;
    let handshake = tokio::select! {
        read = handshake::read(options, &mut incoming, capabilities) => read,
        () = end.ended() => Err(Refusal::Gone),
    };
    let (protocol, leftover) = match handshake {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if let Refusal::Answer(text) = refusal {
                tracing::debug!(error = %text, "handshake failed");
                tx.push(handshake_frame(&HandshakeResponse::error(text), None));
            }
            end.finish();
            finished.cancel();
            return None;
        }
    };
    tracing::Span::current().record("signalr.protocol", protocol.name());
    tx.push(handshake_frame(&HandshakeResponse::ok(), Some(protocol)));

    // The hub's provider, else the authenticated user's id (its `sub` claim).
    let user = options.user_id_of(&request);
    let expiry = options
        .close_on_authentication_expiration
        .then(|| request.user().and_then(User::expires_at))
        .flatten();
    let handle = Arc::new(ConnectionHandle::new(
        connection_id,
        user,
        protocol,
        tx,
        end,
        (options.slow_consumer, runtime.slow_consumers.clone()),
        (
            runtime.meters.connection(protocol),
            runtime.outgoing.clone(),
        ),
    ));
    let budget = UploadBudget::new(UploadLimits {
        soft_items: options.stream_buffer_capacity,
        max_bytes: options.max_upload_buffer,
    });
    let state = Arc::new(ConnectionState {
        handle: handle.clone(),
        request,
        transport,
        items: Items::default(),
        streams: Arc::new(Streams::new(budget)),
    });
    let cx = Context::new(state, runtime.clone());
    // ASP.NET Core's CloseOnAuthenticationExpiration: the credential's expiry ends the
    // connection, with a Close that forbids reconnecting.
    let expiry = expiry.map(|at| {
        let end = cx.handle().end_handle().clone();
        tokio::spawn(async move {
            let wait = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(wait).await;
            end.end(end::EndReason::AuthenticationExpired);
        })
    });
    runtime.lifetime.on_connected(handle).await;
    tracing::info!(
        transport = transport.name(),
        protocol = protocol.name(),
        "connected"
    );
    Some(Established {
        cx,
        incoming,
        capabilities,
        protocol,
        leftover,
        expiry,
    })
}
