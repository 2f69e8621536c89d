//! Streams in both directions: what a streaming hub method returns, and what a client
//! uploads to one.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Waker};

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};

use crate::base::error::DispatchError;
use hubs_protocol::HubError;
use hubs_protocol::{Protocol, Value};

/// The items of a server-to-client stream, encoded for the caller's protocol.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<Value, DispatchError>> + Send>>;

/// What a hub method produced.
#[non_exhaustive]
pub enum Reply {
    /// No value (`()`); sent as a null result, as the official server does.
    Unit,
    /// A value in the caller's protocol.
    Value(Value),
    /// The items of a streaming method.
    Stream(ReplyStream),
}

/// Items a client streams to a hub method: a parameter of this type receives one of the
/// invocation's `streamIds`.
///
/// Each item is bound to `T`. If the client ends the upload with an error, the stream
/// yields it as a [`HubError`] carrying the client's text, so `?` fails the method with
/// `… HubException: {text}`, as the official server does. If the connection ends first,
/// or the client sends more than the server buffers for it (see
/// [`HubOptions::max_upload_buffer`](crate::HubOptions::max_upload_buffer)), the stream
/// yields an error too, then ends: it never looks complete when it is not.
///
/// ```
/// use futures_util::StreamExt;
/// use hubs_core::{HubError, UploadStream};
///
/// async fn concat(mut parts: UploadStream<String>) -> Result<String, HubError> {
///     let mut text = String::new();
///     while let Some(part) = parts.next().await {
///         text.push_str(&part?);
///     }
///     Ok(text)
/// }
/// ```
pub struct UploadStream<T> {
    rx: UploadReceiver,
    _item: PhantomData<fn() -> T>,
}

impl<T> UploadStream<T> {
    pub(crate) fn new(rx: UploadReceiver) -> Self {
        rx.shared.lock().consumer_started = true;
        Self {
            rx,
            _item: PhantomData,
        }
    }
}

impl<T> fmt::Debug for UploadStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadStream").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Stream for UploadStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next(cx).map(|item| {
            item.map(|item| match item {
                Ok(value) => value
                    .deserialize()
                    .map_err(|e| HubError::new(format!("cannot bind a stream item: {e}"))),
                Err(text) => Err(HubError::new(text)),
            })
        })
    }
}

/// A streaming method's items, encoded for `protocol`.
pub fn reply_stream<T, S>(protocol: Protocol, stream: S) -> ReplyStream
where
    T: Serialize,
    S: Stream<Item = T> + Send + 'static,
{
    Box::pin(
        stream.map(move |item| Value::serialize(protocol, &item).map_err(DispatchError::Encode)),
    )
}

/// A streaming method's items that may fail; an `Err` ends the stream with
/// `An error occurred on the server while streaming results.`
pub fn reply_fallible_stream<T, E, S>(protocol: Protocol, stream: S) -> ReplyStream
where
    T: Serialize,
    E: fmt::Display + 'static,
    S: Stream<Item = Result<T, E>> + Send + 'static,
{
    Box::pin(stream.map(move |item| match item {
        Ok(item) => Value::serialize(protocol, &item).map_err(DispatchError::Encode),
        Err(error) => Err(DispatchError::failed(error)),
    }))
}

/// A channel receiver as a stream.
pub fn receiver_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// The limits on what uploads may buffer: per upload before the reader defers to a
/// draining method, and per connection before an upload is dropped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UploadLimits {
    /// Items of one upload beyond which the reader waits (briefly) for its method.
    pub(crate) soft_items: usize,
    /// Bytes all uploads of one connection may buffer.
    pub(crate) max_bytes: usize,
}

/// What one buffered item costs beyond its bytes.
const ITEM_OVERHEAD: usize = 32;

/// The bytes all uploads of one connection buffer, against their limit.
#[derive(Debug)]
pub(crate) struct UploadBudget {
    used: AtomicUsize,
    limits: UploadLimits,
}

impl UploadBudget {
    pub(crate) fn new(limits: UploadLimits) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limits,
        })
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= self.limits.max_bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// How an upload ended, as its method will see it.
#[derive(Debug)]
enum UploadCompletion {
    /// The client completed it.
    Completed,
    /// It failed with this text (the client's error, an overflow, the connection's end);
    /// `None` once the method has seen it.
    Failed(Option<String>),
}

#[derive(Debug)]
struct UploadState {
    items: VecDeque<Value>,
    bytes: usize,
    completion: Option<UploadCompletion>,
    consumer_started: bool,
    consumer_gone: bool,
    /// The reader waited for the method to drain this upload and it did not; set back
    /// when the method takes an item.
    stalled: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct UploadShared {
    state: Mutex<UploadState>,
    drained: Notify,
    budget: Arc<UploadBudget>,
}

impl UploadShared {
    fn lock(&self) -> MutexGuard<'_, UploadState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl UploadState {
    /// Drops what is buffered and returns its cost.
    fn clear(&mut self) -> usize {
        self.items.clear();
        std::mem::take(&mut self.bytes)
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// What became of an item the client sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Buffered for the method.
    Buffered,
    /// Over the connection's budget: the upload failed and its buffer was dropped.
    Overflowed,
    /// The upload had ended or its method is gone: ignored.
    Ignored,
}

/// The connection's end of one upload: the reader pushes what the client sends.
#[derive(Clone, Debug)]
pub(crate) struct UploadSender {
    shared: Arc<UploadShared>,
}

/// The method's end of one upload.
#[derive(Debug)]
pub(crate) struct UploadReceiver {
    shared: Arc<UploadShared>,
}

/// A new upload buffer drawing on `budget`.
pub(crate) fn upload(budget: Arc<UploadBudget>) -> (UploadSender, UploadReceiver) {
    let shared = Arc::new(UploadShared {
        state: Mutex::new(UploadState {
            items: VecDeque::new(),
            bytes: 0,
            completion: None,
            consumer_started: false,
            consumer_gone: false,
            stalled: false,
            waker: None,
        }),
        drained: Notify::new(),
        budget,
    });
    (
        UploadSender {
            shared: shared.clone(),
        },
        UploadReceiver { shared },
    )
}

impl UploadSender {
    /// Buffers an item for the method, within the connection's budget. Never waits.
    pub(crate) fn push(&self, stream_id: &str, value: Value) -> Pushed {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.completion.is_some() || state.consumer_gone {
            return Pushed::Ignored;
        }
        let cost = value.as_bytes().len() + ITEM_OVERHEAD;
        if !shared.budget.take(cost) {
            let freed = state.clear();
            shared.budget.give_back(freed);
            state.completion = Some(UploadCompletion::Failed(Some(
                hubs_protocol::wire::upload_overflow(stream_id, shared.budget.limits.max_bytes),
            )));
            state.wake();
            drop(state);
            shared.drained.notify_waiters();
            return Pushed::Overflowed;
        }
        state.items.push_back(value);
        state.bytes += cost;
        state.wake();
        Pushed::Buffered
    }

    /// Ends the upload: completed by the client (`None`) or failed with `error`.
    pub(crate) fn finish(&self, error: Option<String>) {
        let mut state = self.shared.lock();
        if state.completion.is_none() {
            state.completion = Some(match error {
                None => UploadCompletion::Completed,
                Some(text) => UploadCompletion::Failed(Some(text)),
            });
            state.wake();
        }
        drop(state);
        self.shared.drained.notify_waiters();
    }

    /// Whether both are the same upload.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether the reader should wait for the method to drain this upload: it holds more
    /// than `soft_items`, its method is consuming it, and it has not stalled.
    pub(crate) fn congested(&self) -> bool {
        let state = self.shared.lock();
        state.completion.is_none()
            && !state.consumer_gone
            && state.consumer_started
            && !state.stalled
            && state.items.len() > self.shared.budget.limits.soft_items
    }

    /// Waits until the upload holds `soft_items` or fewer, or has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is lost if it is dropped.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.shared.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.shared.lock();
                if state.completion.is_some()
                    || state.consumer_gone
                    || state.items.len() <= self.shared.budget.limits.soft_items
                {
                    return;
                }
            }
            notified.await;
        }
    }

    /// The method did not drain the upload in time: the reader reads on, and the upload
    /// buffers within the connection's budget until the method has taken it back down to
    /// `soft_items`.
    pub(crate) fn mark_stalled(&self) {
        self.shared.lock().stalled = true;
    }
}

impl UploadReceiver {
    fn poll_next(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Value, String>>> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if let Some(value) = state.items.pop_front() {
            let cost = value.as_bytes().len() + ITEM_OVERHEAD;
            state.bytes -= cost;
            let soft_items = shared.budget.limits.soft_items;
            // A stalled upload is waited for again only once its method has caught up,
            // not after every item it takes.
            if state.items.len() <= soft_items {
                state.stalled = false;
            }
            let drained = state.items.len() == soft_items;
            drop(state);
            shared.budget.give_back(cost);
            if drained {
                shared.drained.notify_waiters();
            }
            return Poll::Ready(Some(Ok(value)));
        }
        match &mut state.completion {
            Some(UploadCompletion::Completed) => Poll::Ready(None),
            Some(UploadCompletion::Failed(text)) => Poll::Ready(text.take().map(Err)),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for UploadReceiver {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut state = shared.lock();
        state.consumer_gone = true;
        let freed = state.clear();
        drop(state);
        shared.budget.give_back(freed);
        shared.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u32) -> Value {
        Value::serialize(Protocol::Json, &n).expect("encodes")
    }

    fn budget(soft_items: usize, max_bytes: usize) -> Arc<UploadBudget> {
        UploadBudget::new(UploadLimits {
            soft_items,
            max_bytes,
        })
    }

    #[tokio::test]
    async fn items_then_completion_reach_the_method() {
        let (tx, rx) = upload(budget(2, 1 << 20));
        assert_eq!(tx.push("s", value(1)), Pushed::Buffered);
        assert_eq!(tx.push("s", value(2)), Pushed::Buffered);
        tx.finish(None);
        let items: Vec<u32> = UploadStream::<u32>::new(rx)
            .map(|item| item.expect("an item"))
            .collect()
            .await;
        assert_eq!(items, [1, 2]);
    }

    #[tokio::test]
    async fn an_error_is_yielded_once_then_the_stream_ends() {
        let (tx, rx) = upload(budget(2, 1 << 20));
        tx.push("s", value(1));
        tx.finish(Some("Something bad".to_owned()));
        let mut stream = UploadStream::<u32>::new(rx);
        assert_eq!(stream.next().await, Some(Ok(1)));
        assert_eq!(
            stream.next().await,
            Some(Err(HubError::new("Something bad")))
        );
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test]
    async fn over_the_budget_the_upload_fails_and_frees_its_buffer() {
        let budget = budget(1, 4 * (ITEM_OVERHEAD + 1));
        let (tx, rx) = upload(budget.clone());
        for n in 0..4 {
            assert_eq!(tx.push("s", value(n)), Pushed::Buffered);
        }
        assert_eq!(tx.push("s", value(4)), Pushed::Overflowed);
        assert_eq!(
            budget.used.load(Ordering::Acquire),
            0,
            "the buffer was freed"
        );
        assert_eq!(tx.push("s", value(5)), Pushed::Ignored);
        let mut stream = UploadStream::<u32>::new(rx);
        let error = stream.next().await.expect("an error").expect_err("failed");
        assert!(error.message().contains("exceeded"), "{error}");
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test]
    async fn congestion_needs_a_consumer_and_clears_when_drained() {
        let (tx, rx) = upload(budget(1, 1 << 20));
        tx.push("s", value(1));
        tx.push("s", value(2));
        assert!(!tx.congested(), "no method consumes it yet");
        let mut stream = UploadStream::<u32>::new(rx);
        assert!(tx.congested());
        tx.mark_stalled();
        assert!(!tx.congested(), "stalled uploads are not waited for");
        assert_eq!(stream.next().await, Some(Ok(1)));
        tx.drained().await;
        tx.push("s", value(3));
        assert!(tx.congested(), "catching up clears the stall");
        tx.mark_stalled();
        tx.push("s", value(4));
        assert_eq!(stream.next().await, Some(Ok(2)));
        assert!(!tx.congested(), "one item taken is not catching up");
        drop(stream);
        assert!(!tx.congested());
        assert_eq!(tx.push("s", value(4)), Pushed::Ignored);
    }
}
