//! A transport that is not HTTP: two queues to a server in the same process (what
//! `hubs::testing` connects through).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use hubs_protocol::TransportKind;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::link::{Link, Outgoing};
use crate::error::StartError;

/// Opens a transport that is not HTTP: a server in the same process, for tests
/// (`hubs::testing`). The client skips negotiate and runs the handshake over it.
pub trait Connector: Send + Sync + 'static {
    /// A new pair of queues to the server.
    fn open(&self) -> Pin<Box<dyn Future<Output = Result<Duplex, StartError>> + Send + 'static>>;
}

/// The two ends a [`Connector`] opens: bytes for the server, and bytes
/// from it. Dropping `to_server` is the client's clean close; the server closes
/// `from_server` when the connection closes.
#[derive(Debug)]
pub struct Duplex {
    /// What the client sends (the handshake first).
    pub to_server: mpsc::Sender<Bytes>,
    /// What the server sends.
    pub from_server: mpsc::Receiver<Bytes>,
    /// The connection's id, when the server tells it.
    pub connection_id: Option<String>,
}

pub(crate) fn link(duplex: Duplex) -> Link {
    let Duplex {
        to_server,
        from_server,
        ..
    } = duplex;
    let (out, mut queued) = mpsc::channel::<Outgoing>(64);
    let (flushed_tx, flushed) = oneshot::channel();
    let stop = CancellationToken::new();
    let writer_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = queued.recv() => {
                    let Some(frame) = frame else { break };
                    if to_server.send(frame.bytes).await.is_err() {
                        break;
                    }
                }
                () = writer_stop.cancelled() => break,
            }
        }
        drop(to_server);
        let _ = flushed_tx.send(());
    });
    Link {
        transport: TransportKind::WebSockets,
        out,
        incoming: from_server,
        guard: stop.drop_guard(),
        flushed,
        closed_cleanly: std::sync::Arc::default(),
        failure: std::sync::Arc::default(),
    }
}
