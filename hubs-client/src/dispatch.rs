//! Calls from the server: the handlers registered with `on`, run one call at a time in the
//! order the calls arrive (as the official .NET client does), on a task of their own so
//! that a slow handler never holds up results, stream items or keep-alive.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use hubs_protocol::wire;
use hubs_protocol::{Headers, Invocation, Outcome, Protocol, Value};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::arguments::FromArguments;
use crate::command::{self, Call, Command};
use crate::config::Config;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Value>, String>> + Send>>;
/// A type-erased handler: the call's arguments and headers in, its reply out.
pub(crate) type Handler = Arc<dyn Fn(Vec<Value>, Headers, Protocol) -> HandlerFuture + Send + Sync>;

/// What a handler given to [`HubConnection::on`](crate::connection::HubConnection::on) may return:
/// `()` (no result), or a `Result<T, E>` (a client result: the value, or the error's text).
pub trait HandlerReply: Send + 'static {
    /// The value to send back, in `protocol`, if any.
    ///
    /// # Errors
    ///
    /// The error text to send back.
    fn into_reply(self, protocol: Protocol) -> Result<Option<Value>, String>;
}

impl HandlerReply for () {
    fn into_reply(self, _: Protocol) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

impl<T: Serialize + Send + 'static, E: fmt::Display + Send + 'static> HandlerReply
    for Result<T, E>
{
    fn into_reply(self, protocol: Protocol) -> Result<Option<Value>, String> {
        match self {
            Ok(value) => Value::serialize(protocol, &value)
                .map(Some)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// Erases a typed handler.
pub(crate) fn typed<A, F, Fut>(handler: F) -> Handler
where
    A: FromArguments + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerReply,
{
    with_headers(move |_: Headers, arguments: A| handler(arguments))
}

/// Erases a typed handler that also takes the call's headers.
pub(crate) fn with_headers<A, F, Fut>(handler: F) -> Handler
where
    A: FromArguments + Send + 'static,
    F: Fn(Headers, A) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerReply,
{
    let handler = Arc::new(handler);
    Arc::new(
        move |values: Vec<Value>, headers: Headers, protocol: Protocol| {
            let handler = handler.clone();
            Box::pin(async move {
                let arguments = A::from_values(&values)
                    .map_err(|_| "Client failed to parse argument(s).".to_owned())?;
                handler(headers, arguments).await.into_reply(protocol)
            }) as HandlerFuture
        },
    )
}

/// What the dispatcher is told, in order.
pub(crate) enum DispatchItem {
    On(String, Handler),
    Off(String),
    Invoke(Invocation),
}

/// The task that owns the handlers and runs the server's calls.
pub(crate) struct Dispatcher {
    items: mpsc::UnboundedReceiver<DispatchItem>,
    /// Replies go to the supervisor (weak: the dispatcher does not keep it alive).
    commands: mpsc::WeakUnboundedSender<Command>,
    protocol: Protocol,
    handlers: HashMap<String, Vec<Handler>>,
}

impl Dispatcher {
    pub(crate) fn new(
        items: mpsc::UnboundedReceiver<DispatchItem>,
        commands: mpsc::WeakUnboundedSender<Command>,
        config: &Config,
    ) -> Self {
        Self {
            items,
            commands,
            protocol: config.protocol,
            handlers: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        while let Some(item) = self.items.recv().await {
            match item {
                DispatchItem::On(target, handler) => {
                    self.handlers.entry(target).or_default().push(handler);
                }
                DispatchItem::Off(target) => {
                    self.handlers.remove(&target);
                }
                DispatchItem::Invoke(invocation) => self.invoke(invocation).await,
            }
        }
    }

    async fn invoke(&self, invocation: Invocation) {
        let handlers = self
            .handlers
            .get(&invocation.target.to_lowercase())
            .cloned()
            .unwrap_or_default();
        if handlers.is_empty() {
            tracing::debug!(target = %invocation.target, "no handler for a call from the server");
        }
        // The server's call, handled here: its span continues the server's trace.
        let span = tracing::info_span!(
            "signalr.invocation",
            otel.name = invocation.target.as_str(),
            otel.kind = "server",
            rpc.system = "signalr",
            rpc.method = invocation.target.as_str(),
        );
        hubs_protocol::trace_context::continue_trace(&span, &invocation.headers);
        let protocol = self.protocol;
        let replies = async {
            let mut replies = Vec::new();
            for handler in &handlers {
                let call = AssertUnwindSafe(handler(
                    invocation.arguments.clone(),
                    invocation.headers.clone(),
                    protocol,
                ));
                replies.push(call.catch_unwind().await.unwrap_or_else(|_| {
                    Err(format!("The handler of '{}' panicked.", invocation.target))
                }));
            }
            replies
        }
        .instrument(span)
        .await;
        let Some(id) = invocation.invocation_id else {
            return;
        };
        let mut values = replies.into_iter().filter(|r| !matches!(r, Ok(None)));
        let outcome = match (values.next(), values.next()) {
            (Some(_), Some(_)) => Outcome::Error("Client provided multiple results.".to_owned()),
            (Some(Ok(Some(value))), None) => Outcome::Result(value),
            (Some(Err(error)), None) => Outcome::Error(error),
            _ => Outcome::Error(wire::NO_CLIENT_RESULT.to_owned()),
        };
        let Some(bytes) = command::encode(protocol, &command::completion(id, outcome)) else {
            return;
        };
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Send {
                bytes,
                call: Call::None,
                sent: None,
            });
        }
    }
}
