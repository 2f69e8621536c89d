//! The per-connection task's life: the handshake, `on_connected`, the read loop, close.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::connection::close::CloseReason;
use crate::dispatch::task::Task;
use crate::hub::context::{ConnectionData, Context, Items};

use crate::base::stream::{UploadBudget, UploadLimits};
use crate::connection::close::CloseHandle;
use crate::connection::handle::ConnectionHandle;
use crate::connection::outbound::Frame;
use crate::connection::outbound::OutboundQueue;
use crate::connection::streams::Streams;
use crate::connection::transport::{Connected, TransportConnection};
use crate::dispatch::close::tear_down;
use crate::dispatch::handshake::Refusal;
use crate::dispatch::hooks::on_connected;
use crate::dispatch::reader::Reader;
use crate::hub::definition::Hub;
use crate::runtime::HubRuntime;
use hubs_protocol::TransportKind;
use hubs_protocol::wire;
use hubs_protocol::{HandshakeResponse, Protocol, TransferFormat};

pub(crate) fn start<H: Hub>(
    runtime: Arc<HubRuntime<H>>,
    connection: TransportConnection,
) -> Connected {
    let (tx, rx) =
        crate::connection::outbound::outbound_queue(runtime.shared.options.outbound_budget);
    let closed = CancellationToken::new();
    // Shutting the hub down closes every connection.
    let close_handle = CloseHandle::child_of(&runtime.shared.shutdown);
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
    let task = run(
        runtime,
        connection,
        tx,
        close_handle.clone(),
        closed.clone(),
    )
    .instrument(span);
    Connected {
        outgoing: rx,
        closed,
        close_handle,
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
    cx: Task<H>,
    incoming: crate::connection::transport::Incoming,
    capabilities: crate::connection::transport::Capabilities,
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
    close_handle: CloseHandle,
    closed: CancellationToken,
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
    }) = establish(&runtime, connection, tx, close_handle, &closed).await
    else {
        return;
    };
    let options = &runtime.shared.options;

    // The hook runs until it returns or the connection closes (its transport may go).
    let hook = tokio::select! {
        hook = AssertUnwindSafe(on_connected(&cx)).catch_unwind() => Some(hook),
        () = cx.handle().close_handle().closed() => None,
    };
    let why = match hook {
        None => CloseReason::signalled(
            cx.handle().close_handle().reason(),
            runtime.shared.shutdown.is_cancelled(),
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
        Some(Ok(Err(error))) => CloseReason::Error {
            text: wire::closed_with_error(Some(("HubException", error.message()))),
            allow_reconnect: false,
        },
        Some(Err(_)) => {
            tracing::error!("on_connected panicked");
            CloseReason::Error {
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
    tear_down(&runtime, cx, why, &closed).await;
}

/// The handshake, then the connection's registration; `None` when the handshake failed
/// or the connection closed first (it is then over: `closed` is cancelled).
async fn establish<H: Hub>(
    runtime: &Arc<HubRuntime<H>>,
    connection: Box<TransportConnection>,
    tx: OutboundQueue,
    close_handle: CloseHandle,
    closed: &CancellationToken,
) -> Option<Established<H>> {
    let TransportConnection {
        connection_id,
        request,
        transport,
        capabilities,
        mut incoming,
    } = *connection;
    let options = &runtime.shared.options;
    let handshake = tokio::select! {
        read = crate::dispatch::handshake::read(options, &mut incoming, capabilities) => read,
        () = close_handle.closed() => Err(Refusal::Gone),
    };
    let (protocol, leftover) = match handshake {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if let Refusal::Answer(text) = refusal {
                tracing::debug!(error = %text, "handshake failed");
                tx.push(handshake_frame(&HandshakeResponse::error(text), None));
            }
            close_handle.mark_closed();
            closed.cancel();
            return None;
        }
    };
    tracing::Span::current().record("signalr.protocol", protocol.name());
    tx.push(handshake_frame(&HandshakeResponse::ok(), Some(protocol)));

    // The hub's provider, else the authenticated user's id (its `sub` claim).
    let user = options.user_id_of(&request);
    let handle = Arc::new(
        ConnectionHandle::new(
            connection_id,
            user,
            protocol,
            tx,
            close_handle,
            (options.slow_consumer, runtime.shared.slow_consumers.clone()),
            (
                runtime.shared.meters.connection(protocol),
                runtime.shared.outgoing.clone(),
            ),
        )
        .with_identity(request.user_arc()),
    );
    let budget = UploadBudget::new(UploadLimits {
        soft_items: options.stream_buffer_capacity,
        max_bytes: options.max_upload_buffer,
    });
    let state = Arc::new(ConnectionData {
        handle: handle.clone(),
        request,
        transport,
        items: Items::default(),
        streams: Arc::new(Streams::new(budget)),
    });
    crate::dispatch::refresh::register(runtime, &state);
    let cx = Task::new(Context::new(state, runtime.shared.clone()), runtime.clone());
    let per_poll = transport == TransportKind::LongPolling
        && options.refreshes_authentication()
        && crate::hub::refresh::refreshes_on_conflict(cx.request().headers());
    let expiry = close_on_expiry(options, per_poll, cx.handle());
    runtime.shared.lifetime.on_connected(handle).await;
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

/// ASP.NET Core's CloseOnAuthenticationExpiration: the credential's expiry ends the
/// connection, with a Close that forbids reconnecting. An accepted authentication refresh
/// moves the expiry, and the timer follows it. Long polling on a hub that refreshes, with a
/// client that refreshes when told, is the exception (`per_poll`): every poll carries the
/// credential, so expiry is checked per poll instead (the transport answers 409
/// `authentication_refresh_required` and the client refreshes).
fn close_on_expiry(
    options: &crate::hub::options::HubOptions,
    per_poll: bool,
    handle: &Arc<ConnectionHandle>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !options.close_on_authentication_expiration || per_poll {
        return None;
    }
    let mut expiry = handle.identity.watch_expiry();
    expiry.borrow_and_update().as_ref()?;
    let close_handle = handle.close_handle().clone();
    Some(tokio::spawn(async move {
        loop {
            let Some(at) = *expiry.borrow_and_update() else {
                // A refresh without an expiry: nothing to close for, until one comes.
                if expiry.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let wait = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => break,
                changed = expiry.changed() => if changed.is_err() { return },
            }
        }
        close_handle.close(CloseReason::Error {
            text: wire::AUTHENTICATION_EXPIRED.to_owned(),
            allow_reconnect: false,
        });
    }))
}
