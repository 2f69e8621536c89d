//! The contract between a hub type and the runtime; `#[hub]` implements it.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::base::authorization::Requirement;
use crate::base::error::DispatchError;
use crate::base::future::BoxFuture;
use crate::base::limit::Limit;
use crate::base::services::ServiceKey;
use crate::base::stream::Reply;
use crate::base::stream::{UploadReceiver, UploadStream};
use crate::hub::context::Context;
use crate::routing::recipients::ClientFamily;
use hubs_protocol::HubError;
use hubs_protocol::{Protocol, Value};

/// A hub: a type whose methods clients call by name.
///
/// Implemented by `#[hub]` on an `impl` block; there is rarely a reason to implement it by
/// hand. The hub value is shared by every connection and call (put pools, caches and
/// configuration in it); state that belongs to one connection lives in
/// [`Context::items`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a hub",
    note = "put `#[hubs::hub]` on an `impl {Self}` block to make it one"
)]
pub trait Hub: Send + Sync + Sized + 'static {
    /// The typed proxy family for calls to clients (see `#[client]`), or
    /// [`Untyped`](crate::routing::recipients::Untyped).
    type Client: ClientFamily;

    /// The methods clients can call, in the order [`Hub::invoke`] numbers them.
    fn methods() -> &'static [HubMethod];

    /// The private functions of the `#[hub]` block, as (wire name, Rust name): not hub
    /// methods, so a client calling one gets `Method does not exist.`; the server logs a
    /// warning that names the function, the mistake being a missing `pub`.
    fn private_methods() -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// The services the methods inject; checked when the hub is mounted.
    fn services() -> Vec<ServiceKey> {
        Vec::new()
    }

    /// What every connection must meet (`#[hub(authorize ...)]` on the block): checked on
    /// every request that opens or carries a connection.
    fn authorization() -> Option<Requirement> {
        None
    }

    /// Calls method number `method` (an index into [`Hub::methods`]).
    fn invoke(
        self: Arc<Self>,
        method: usize,
        call: Call<Self>,
    ) -> BoxFuture<Result<Reply, DispatchError>>;

    /// Runs when a connection has completed its handshake. An error closes the connection.
    fn on_connected(self: Arc<Self>, cx: Context<Self>) -> BoxFuture<Result<(), HubError>> {
        let _ = cx;
        Box::pin(async { Ok(()) })
    }

    /// Runs when a connection took a refreshed credential (ASP.NET Core 11's
    /// `OnAuthenticationRefreshedAsync`); `cx.user()` is the new user. Only on hubs with
    /// [`HubOptions::authentication_refresh`](crate::HubOptions::authentication_refresh).
    fn on_authentication_refreshed(self: Arc<Self>, cx: Context<Self>) -> BoxFuture<()> {
        let _ = cx;
        Box::pin(async {})
    }

    /// Runs when a connection has closed; `error` tells why when it closed abnormally.
    fn on_disconnected(
        self: Arc<Self>,
        cx: Context<Self>,
        error: Option<HubError>,
    ) -> BoxFuture<()> {
        let _ = (cx, error);
        Box::pin(async {})
    }
}

/// What a client can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubMethod {
    /// The wire name, as clients spell it (matched without regard to case).
    pub name: &'static str,
    /// How many arguments travel in `arguments` (the context, services, the cancellation
    /// token and upload streams do not).
    pub params: usize,
    /// Whether clients call it with a stream invocation (it returns a stream).
    pub streaming: bool,
    /// How many upload streams it takes (each stands for one of the call's `streamIds`).
    pub uploads: usize,
    /// What a caller must meet (`#[hub(authorize ...)]` on the method).
    pub authorize: Option<Requirement>,
    /// The limits declared on it (`#[hub(limit(...))]`).
    pub limits: &'static [Limit],
    /// Whether it may start on its connection's read loop: it streams nothing either
    /// way. With no filter or requirement around it and no other invocation of its
    /// connection running, it is polled there first, as ASP.NET Core's receive loop runs
    /// a method until its first `await`. One that is done then (a plain `fn`, an `async
    /// fn` that did not wait) has its Completion queued at once, with no task of its own;
    /// one that waits moves to a task at once, and the loop reads on. Code before a
    /// method's first `.await` should therefore be short: blocking work belongs in
    /// `spawn_blocking`.
    pub immediate: bool,
}

/// One invocation handed to [`Hub::invoke`]: the caller's context and the raw arguments.
pub struct Call<H: Hub> {
    cx: Context<H>,
    arguments: Vec<Value>,
    uploads: Mutex<Vec<Option<UploadReceiver>>>,
    cancel: CancellationToken,
}

impl<H: Hub> Call<H> {
    pub(crate) fn new(
        cx: Context<H>,
        arguments: Vec<Value>,
        uploads: Vec<UploadReceiver>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            cx,
            arguments,
            uploads: Mutex::new(uploads.into_iter().map(Some).collect()),
            cancel,
        }
    }

    /// Cancelled when the call should stop: the client cancelled the stream, the
    /// connection closed, or the server is shutting down.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Upload stream `index` (in the order of the method's stream parameters).
    ///
    /// # Errors
    ///
    /// [`DispatchError::Bind`] when the client sent fewer streams (or it was taken).
    pub fn upload<T>(&self, index: usize) -> Result<UploadStream<T>, DispatchError> {
        let mut uploads = self
            .uploads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        uploads
            .get_mut(index)
            .and_then(Option::take)
            .map(UploadStream::new)
            .ok_or_else(|| DispatchError::Bind {
                detail: format!("the call has no stream number {index}"),
            })
    }

    /// The caller's context.
    pub fn context(&self) -> &Context<H> {
        &self.cx
    }

    /// The protocol of the caller's connection.
    pub fn protocol(&self) -> Protocol {
        self.cx.protocol()
    }

    /// Binds argument `index` to `T`.
    ///
    /// # Errors
    ///
    /// [`DispatchError::Bind`] when the argument is absent or has another shape.
    pub fn argument<T: DeserializeOwned>(&self, index: usize) -> Result<T, DispatchError> {
        match self.arguments.get(index) {
            Some(value) => value.deserialize().map_err(DispatchError::bind),
            None => Err(DispatchError::Bind {
                detail: format!(
                    "Invocation provides {} argument(s) but target expects more.",
                    self.arguments.len()
                ),
            }),
        }
    }

    /// The service of type `T` (with `key`, for keyed services).
    ///
    /// # Errors
    ///
    /// [`DispatchError::MissingService`] when no such service is registered.
    pub fn service<T: Send + Sync + 'static>(
        &self,
        key: Option<&'static str>,
    ) -> Result<Arc<T>, DispatchError> {
        self.cx
            .shared()
            .services
            .get::<T>(key)
            .ok_or_else(|| DispatchError::MissingService {
                service: ServiceKey::of::<T>(key).to_string(),
            })
    }

    /// A result value, encoded for the caller's protocol.
    ///
    /// # Errors
    ///
    /// [`DispatchError::Encode`] when `value` cannot be serialized.
    pub fn reply<T: Serialize + ?Sized>(&self, value: &T) -> Result<Reply, DispatchError> {
        Value::serialize(self.protocol(), value)
            .map(Reply::Value)
            .map_err(DispatchError::Encode)
    }
}
