//! A connection's outbound queue, counted in bytes.
//!
//! Every sender (the connection's own replies, fan-outs from any connection, the hub
//! context, a backplane) pushes whole frames; the transport's writer takes them in order
//! ([`Outgoing`]). The queue itself never refuses a frame: it measures. It knows how many
//! bytes wait, since when it has been over the soft budget, how old its oldest frame is and
//! how long the writer has left that frame untaken, so the connection's
//! [slow-consumer policy](crate::base::slow_consumer::SlowConsumerPolicy) can tell a receiver that is merely
//! busy from one that is persistently behind, and senders can wait for a writer that is
//! making progress ([`OutboundQueue::paced`]) instead of queueing without end.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::base::slow_consumer::OutboundBudget;

/// Frames a drained queue may keep room for; a burst's larger room is given back.
const SHRINK_ABOVE: usize = 64;

/// One write for the transport: whole hub messages, in a text or a binary frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The encoded messages.
    pub bytes: Bytes,
    /// Whether the frame is binary (MessagePack) rather than text (JSON, the handshake of
    /// a JSON connection).
    pub binary: bool,
    /// Whether the frame is one trackable hub message, counted by stateful reconnect
    /// (not a handshake answer, a Ping or a Close).
    pub sequenced: bool,
}

/// Why a connection's queue holds a receiver to be persistently behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behind {
    /// Over the soft budget for longer than the grace period.
    OverBudget,
    /// Its oldest frame has waited longer than the maximum lag.
    Lagging,
    /// The frame would take it over the hard cap.
    OverCap,
}

impl Behind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::OverBudget => "over its soft budget for longer than the grace period",
            Self::Lagging => "its oldest queued message is older than the maximum lag",
            Self::OverCap => "over the hard cap",
        }
    }
}

/// What [`OutboundQueue::paced`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Paced {
    /// The queue is at or under the level (or closed).
    Under,
    /// The writer has taken nothing for the stall period: it is not waited for.
    Stalled,
    /// The writer takes, but slowly: the sender waited its longest and goes on.
    Slow,
}

/// A snapshot of a queue, for logs and decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Depth {
    pub(crate) bytes: usize,
    pub(crate) frames: usize,
    /// How long the oldest frame has waited.
    pub(crate) oldest: Duration,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<(Frame, Instant)>,
    /// When the queue last went over the soft budget, while it is over.
    over_since: Option<Instant>,
    /// When the writer last took a frame.
    last_taken: Instant,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Bytes queued: read without the lock by every sender.
    bytes: AtomicUsize,
    /// No more frames are coming (the sending side is gone).
    closed: AtomicBool,
    /// The writer went away: nothing will be taken any more.
    abandoned: AtomicBool,
    /// Wakes the writer when the queue is no longer empty.
    data: Notify,
    /// Wakes senders waiting for the queue to go down, when any wait.
    room: Notify,
    room_waiters: AtomicUsize,
    /// Wakes the connection's read loop when the queue goes over its soft budget.
    over: Notify,
    budget: OutboundBudget,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side of a connection's outbound queue. Dropping it (with its clones: the
/// queue is shared through `Arc`) closes the queue; the writer still gets what is in it.
#[derive(Debug)]
pub struct OutboundQueue {
    shared: Arc<Shared>,
}

/// The writer's side of a connection's outbound queue: the frames to write, in order.
#[derive(Debug)]
pub struct Outgoing {
    shared: Arc<Shared>,
}

/// [`Outgoing::try_recv`] found nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued and nothing will be.
    Closed,
}

/// A new queue with `budget`: its sending and its writing side.
pub(crate) fn outbound_queue(budget: OutboundBudget) -> (OutboundQueue, Outgoing) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            over_since: None,
            last_taken: Instant::now(),
        }),
        bytes: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        abandoned: AtomicBool::new(false),
        data: Notify::new(),
        room: Notify::new(),
        room_waiters: AtomicUsize::new(0),
        over: Notify::new(),
        budget,
    });
    (
        OutboundQueue {
            shared: shared.clone(),
        },
        Outgoing { shared },
    )
}

impl OutboundQueue {
    /// A queue of its own, for a transport that makes its connections itself (raw
    /// connection endpoints): its sending and its writing side.
    pub fn new(budget: OutboundBudget) -> (Self, Outgoing) {
        outbound_queue(budget)
    }

    /// The budget the queue is judged by.
    pub fn budget(&self) -> &OutboundBudget {
        &self.shared.budget
    }

    /// Bytes waiting for the writer.
    pub fn bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Whether the writer is gone (nothing queued now will be written).
    pub fn is_abandoned(&self) -> bool {
        self.shared.abandoned.load(Ordering::Acquire)
    }

    /// Queues `frame`, whatever the queue holds: deciding whether it should be queued is
    /// the caller's (a connection judges it by its budget). Returns the bytes queued
    /// after it.
    pub fn push(&self, frame: Frame) -> usize {
        match self.push_at(frame, Instant::now(), false) {
            Ok(bytes) => bytes,
            Err((_, _)) => self.bytes(),
        }
    }

    /// Queues `frame` at `now` unless, when `checked`, the receiver is persistently
    /// behind: then the frame comes back with why. One lock for both.
    pub(crate) fn push_at(
        &self,
        frame: Frame,
        now: Instant,
        checked: bool,
    ) -> Result<usize, (Behind, Frame)> {
        let len = frame.bytes.len();
        let budget = &self.shared.budget;
        let (was_empty, crossed, bytes) = {
            let mut state = self.shared.lock();
            if checked && let Some(behind) = self.behind(&state, len, now) {
                return Err((behind, frame));
            }
            let was_empty = state.frames.is_empty();
            state.frames.push_back((frame, now));
            let bytes = self.shared.bytes.fetch_add(len, Ordering::AcqRel) + len;
            let crossed = bytes > budget.soft_budget && state.over_since.is_none();
            if crossed {
                state.over_since = Some(now);
            }
            if was_empty {
                // The writer's clock for this frame starts now, not at its last take.
                state.last_taken = state.last_taken.max(now);
            }
            (was_empty, crossed, bytes)
        };
        if was_empty {
            self.shared.data.notify_one();
        }
        if crossed {
            self.shared.over.notify_one();
        }
        Ok(bytes)
    }

    /// The rules of [`OutboundBudget`], over the locked state.
    fn behind(&self, state: &State, len: usize, now: Instant) -> Option<Behind> {
        let budget = &self.shared.budget;
        let bytes = self.bytes();
        if bytes.saturating_add(len) > budget.hard_cap {
            return Some(Behind::OverCap);
        }
        if state
            .over_since
            .is_some_and(|since| now.saturating_duration_since(since) > budget.grace)
        {
            return Some(Behind::OverBudget);
        }
        if state
            .frames
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) > budget.max_lag)
        {
            return Some(Behind::Lagging);
        }
        None
    }

    /// Whether adding `len` bytes finds the receiver persistently behind, and why.
    pub(crate) fn judge(&self, len: usize, now: Instant) -> Option<Behind> {
        let state = self.shared.lock();
        self.behind(&state, len, now)
    }

    /// Drops every frame still queued (a client cut for staying behind); the writer keeps
    /// only what it has already taken.
    pub(crate) fn discard(&self) {
        let dropped = {
            let mut state = self.shared.lock();
            state.over_since = None;
            std::mem::take(&mut state.frames)
        };
        let bytes: usize = dropped.iter().map(|(frame, _)| frame.bytes.len()).sum();
        self.shared.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if self.shared.room_waiters.load(Ordering::Acquire) > 0 {
            self.shared.room.notify_waiters();
        }
    }

    /// How much waits, and for how long.
    pub(crate) fn depth(&self) -> Depth {
        let state = self.shared.lock();
        Depth {
            bytes: self.bytes(),
            frames: state.frames.len(),
            oldest: state
                .frames
                .front()
                .map(|(_, at)| at.elapsed())
                .unwrap_or_default(),
        }
    }

    /// Completes when the queue is at or under `level` bytes, when the writer has taken
    /// nothing for the budget's `stall` ([`Paced::Stalled`]), or after its `pace_wait` at
    /// most ([`Paced::Slow`]): a sender waits for a receiver that is reading, a little,
    /// never for one that is not, and never long for one.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn paced(&self, level: usize) -> Paced {
        let stall = self.shared.budget.stall;
        let deadline = Instant::now() + self.shared.budget.pace_wait;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let _waiting = Waiting::new(&self.shared.room_waiters);
            if self.bytes() <= level || self.is_abandoned() {
                return Paced::Under;
            }
            let now = Instant::now();
            let untaken = self.untaken(now);
            if untaken >= stall {
                return Paced::Stalled;
            }
            if now >= deadline {
                return Paced::Slow;
            }
            let wake = deadline.min(now + (stall - untaken));
            tokio::select! {
                () = room => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Completes when the queue is at or under `level` bytes (or the writer is gone),
    /// however long that takes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn under(&self, level: usize) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let _waiting = Waiting::new(&self.shared.room_waiters);
            if self.bytes() <= level || self.is_abandoned() {
                return;
            }
            room.await;
        }
    }

    /// Completes when the queue goes over its soft budget (at once if it is over).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(crate) async fn over_budget(&self) {
        loop {
            let over = self.shared.over.notified();
            tokio::pin!(over);
            over.as_mut().enable();
            if self.bytes() > self.shared.budget.soft_budget {
                return;
            }
            over.await;
        }
    }

    /// How long the writer has left the oldest frame untaken (zero when nothing waits).
    fn untaken(&self, now: Instant) -> Duration {
        let state = self.shared.lock();
        match state.frames.front() {
            Some((_, at)) => now.saturating_duration_since(state.last_taken.max(*at)),
            None => Duration::ZERO,
        }
    }
}

impl Drop for OutboundQueue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.data.notify_one();
    }
}

/// Counts a sender waiting for room while it lives, so the writer wakes senders only when
/// some wait.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Outgoing {
    /// The next frame; `None` once the queue is empty and its sending side is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a frame is taken only when this returns it.
    pub async fn recv(&mut self) -> Option<Frame> {
        // A frame already there costs no waiter.
        let taken = match self.take() {
            Ok(frame) => Some(frame),
            Err(TryRecvError::Closed) => None,
            Err(TryRecvError::Empty) => loop {
                let data = self.shared.data.notified();
                tokio::pin!(data);
                data.as_mut().enable();
                match self.take() {
                    Ok(frame) => break Some(frame),
                    Err(TryRecvError::Closed) => break None,
                    Err(TryRecvError::Empty) => data.await,
                }
            },
        };
        if taken.is_some() {
            // The writer's progress, once per wake (a batch's further frames come from
            // `try_recv`): what tells a writer that takes from one that does not.
            self.shared.lock().last_taken = Instant::now();
        }
        taken
    }

    /// The next frame if one is queued.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is queued, [`TryRecvError::Closed`] when
    /// nothing is queued and nothing will be.
    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        self.take()
    }

    fn take(&self) -> Result<Frame, TryRecvError> {
        let shared = &*self.shared;
        let taken = {
            let mut state = shared.lock();
            match state.frames.pop_front() {
                Some((frame, _)) => {
                    let len = frame.bytes.len();
                    let bytes = shared.bytes.fetch_sub(len, Ordering::AcqRel) - len;
                    if bytes <= shared.budget.soft_budget {
                        state.over_since = None;
                    }
                    if state.frames.is_empty() && state.frames.capacity() > SHRINK_ABOVE {
                        // A burst is over: give its room back.
                        state.frames = VecDeque::new();
                    }
                    Some(frame)
                }
                None => None,
            }
        };
        match taken {
            Some(frame) => {
                if shared.room_waiters.load(Ordering::Acquire) > 0 {
                    shared.room.notify_waiters();
                }
                Ok(frame)
            }
            None if shared.closed.load(Ordering::Acquire) => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.shared.bytes.load(Ordering::Acquire) == 0 && self.shared.lock().frames.is_empty()
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.shared.abandoned.store(true, Ordering::Release);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Frame {
        Frame {
            bytes: Bytes::from(vec![b'x'; len]),
            binary: false,
            sequenced: true,
        }
    }

    fn budget() -> OutboundBudget {
        OutboundBudget::default()
            .soft_budget(1000)
            .hard_cap(5000)
            .grace(Duration::from_secs(5))
            .max_lag(Duration::from_secs(30))
            .pace_wait(Duration::from_millis(250))
            .stall(Duration::from_millis(500))
    }

    #[tokio::test(start_paused = true)]
    async fn counts_bytes_and_hands_frames_over_in_order() {
        let (queue, mut outgoing) = outbound_queue(budget());
        assert_eq!(queue.push(frame(10)), 10);
        assert_eq!(queue.push(frame(20)), 30);
        assert_eq!(outgoing.recv().await.map(|f| f.bytes.len()), Some(10));
        assert_eq!(queue.bytes(), 20);
        assert_eq!(outgoing.try_recv().map(|f| f.bytes.len()), Ok(20));
        assert_eq!(outgoing.try_recv().err(), Some(TryRecvError::Empty));
        assert!(outgoing.is_empty());
        drop(queue);
        assert!(outgoing.recv().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn behind_only_after_the_grace_period_the_lag_or_past_the_cap() {
        let (queue, mut outgoing) = outbound_queue(budget());
        queue.push(frame(1500));
        let start = Instant::now();
        assert_eq!(
            queue.judge(10, start),
            None,
            "over the soft budget, within grace"
        );
        assert_eq!(
            queue.judge(10, start + Duration::from_secs(6)),
            Some(Behind::OverBudget)
        );
        assert_eq!(queue.judge(4000, start), Some(Behind::OverCap));
        // Back under the soft budget: the grace clock stops, only the lag is left.
        outgoing.try_recv().expect("a frame");
        queue.push(frame(10));
        assert_eq!(queue.judge(10, start + Duration::from_secs(6)), None);
        assert_eq!(
            queue.judge(10, start + Duration::from_secs(31)),
            Some(Behind::Lagging)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_waits_for_a_writer_that_takes_and_not_for_one_that_does_not() {
        let (queue, mut outgoing) = outbound_queue(budget());
        for _ in 0..10 {
            queue.push(frame(100));
        }
        // Nobody takes: a wait ends after `pace_wait`, and once the stall period has
        // passed, at once.
        let started = Instant::now();
        assert_eq!(queue.paced(500).await, Paced::Slow);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(queue.paced(500).await, Paced::Stalled);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(queue.paced(500).await, Paced::Stalled);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        // A writer taking one frame every 100 ms is waited for, up to the stall period.
        let writer = tokio::spawn(async move {
            while let Some(_frame) = outgoing.recv().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = Instant::now();
        assert_eq!(queue.paced(500).await, Paced::Slow);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(queue.paced(500).await, Paced::Under);
        // Five frames taken, one every 100 ms.
        assert!(started.elapsed() >= Duration::from_millis(350));
        drop(queue);
        writer.await.expect("the writer ends");
    }

    #[tokio::test(start_paused = true)]
    async fn over_budget_wakes_once_the_soft_budget_is_crossed() {
        let (queue, _outgoing) = outbound_queue(budget());
        let queue = Arc::new(queue);
        let watcher = tokio::spawn({
            let queue = queue.clone();
            async move { queue.over_budget().await }
        });
        tokio::task::yield_now().await;
        queue.push(frame(600));
        tokio::task::yield_now().await;
        assert!(!watcher.is_finished());
        queue.push(frame(600));
        watcher.await.expect("woken");
    }
}
