//! What the fuzz targets in `fuzz/` call (the `__fuzz` feature): each parser of the
//! server's bytes, reached the way a connection reaches it. Not an API: no semver promise.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hubs_protocol::{Protocol, TransportKind};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::DEFAULT_MAX_MESSAGE_SIZE;
use crate::handshake::{self, Opened, ResumeAt};
use crate::negotiate;
use crate::session::{Session, SessionEvent, Settings, Stateful};
use crate::transport::Link;
use crate::transport::auth::Auth;
use crate::transport::event_stream::EventStream;

/// Reads a negotiate answer as `start` does; `stateful`: whether the client asked for
/// stateful reconnect. Whether it names a connection (not a redirect, not an error).
pub fn negotiate_answer(body: &[u8], stateful: bool) -> bool {
    matches!(
        negotiate::read_answer(body, stateful),
        Ok(negotiate::Answer::Connection(_))
    )
}

/// Reads an event stream's body, arriving in `chunks`: the data the connection reads.
pub fn event_stream<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut events = EventStream::default();
    chunks
        .into_iter()
        .flat_map(|chunk| events.push(chunk))
        .collect()
}

/// Hands `chunks` to a connection's reading side as a transport delivers them (a long
/// poll's bodies, WebSocket frames, the data of events): the handshake answer, then hub
/// messages in `protocol`, through the session (stateful reconnect's accounting when
/// `stateful`) with the default limits, until the chunks run out. Returns how many
/// messages the connection would act on, or why it would end.
///
/// Needs a tokio runtime with time (a paused clock keeps it fast).
///
/// # Errors
///
/// The handshake failed, or the session could not read a message.
pub async fn received(
    protocol: Protocol,
    stateful: bool,
    chunks: Vec<Bytes>,
) -> Result<usize, String> {
    let (to_client, incoming) = mpsc::channel(chunks.len().max(1));
    for chunk in chunks {
        to_client.try_send(chunk).map_err(|e| e.to_string())?;
    }
    drop(to_client);
    // What the client sends goes nowhere (kept open: a closed queue is a lost transport).
    let (out, _sent) = mpsc::channel(1024);
    let (_flushed_tx, flushed) = oneshot::channel();
    let mut link = Link {
        transport: TransportKind::LongPolling,
        out,
        incoming,
        flushed,
        guard: CancellationToken::new().drop_guard(),
        closed_cleanly: Arc::default(),
        failure: Arc::default(),
    };
    let version = if stateful { 2 } else { 1 };
    let timeout = Duration::from_secs(1);
    let leftover = handshake::handshake(&mut link, protocol, version, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let resume = stateful.then(|| ResumeAt {
        url: String::new(),
        token: None,
        auth: Auth::default(),
    });
    let settings = Settings {
        protocol,
        keep_alive: Duration::from_secs(15),
        server_timeout: Duration::from_secs(30),
        max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
    };
    let state = resume.clone().map(|at| Stateful::new(100_000, at));
    let opened = Opened {
        link,
        leftover,
        connection_id: None,
        resume,
        auth: None,
        token_lifetime: None,
    };
    let mut session = Session::new(opened, settings, state);
    let mut messages = 0_usize;
    let mut event = SessionEvent::Data;
    loop {
        match event {
            SessionEvent::Data => {
                while session.next_message()?.is_some() {
                    messages = messages.saturating_add(1);
                }
            }
            SessionEvent::Lost(_) | SessionEvent::Closed => return Ok(messages),
            SessionEvent::Idle => {}
        }
        event = session.next().await;
    }
}
