//! Stateful reconnect's accounting (protocol.md §11), the same on both sides of a
//! connection: [`ReplayBuffer`] numbers what a side sends and keeps it until the peer
//! acknowledges it; [`ReceivedSequence`] numbers what a side receives, drops what a replay
//! sends twice, and says when an `Ack` is due.
//!
//! Only trackable messages count ([`HubMessage::is_sequenced`]): Invocation, StreamItem,
//! Completion, StreamInvocation and CancelInvocation. Ids start at 1 and run for the whole
//! logical connection, across transports.
//!
//! ```
//! use bytes::Bytes;
//! use hubs_protocol::{ReceivedSequence, ReplayBuffer};
//!
//! // The sender numbers three messages; the peer acknowledges the first two.
//! let mut sent = ReplayBuffer::new(100_000);
//! for text in ["a", "b", "c"] {
//!     sent.push(Bytes::from(text));
//! }
//! sent.ack(2);
//! // After a reconnect it announces id 3 and replays "c".
//! assert_eq!(sent.sequence_id(), 3);
//! assert_eq!(sent.unacknowledged().collect::<Vec<_>>(), [&Bytes::from("c")]);
//!
//! // The receiver processed 1..=3 before the drop; the replay starts at 3: a duplicate.
//! let mut received = ReceivedSequence::default();
//! for _ in 0..3 {
//!     assert!(received.accept());
//! }
//! received.sequence(3).unwrap();
//! assert!(!received.accept());
//! assert!(received.accept()); // id 4 is new
//! assert_eq!(received.ack_due(), Some(4));
//! assert_eq!(received.ack_due(), None);
//! ```

use std::collections::VecDeque;

use bytes::Bytes;

use crate::message::HubMessage;

/// The official text when a peer announces a sequence id beyond what was received.
pub const SEQUENCE_AHEAD: &str = "Sequence ID greater than amount of messages we've received.";

impl HubMessage {
    /// Whether the message counts in stateful reconnect's sequence (types 1 to 5).
    pub fn is_sequenced(&self) -> bool {
        matches!(
            self,
            Self::Invocation(_)
                | Self::StreamItem(_)
                | Self::Completion(_)
                | Self::StreamInvocation(_)
                | Self::CancelInvocation(_)
        )
    }
}

/// What one side sent and the peer has not acknowledged yet, numbered from 1.
#[derive(Debug)]
pub struct ReplayBuffer {
    /// (sequence id, encoded message), oldest first.
    messages: VecDeque<(u64, Bytes)>,
    next_id: u64,
    bytes: usize,
    limit: usize,
}

impl ReplayBuffer {
    /// An empty buffer that counts as full past `limit` bytes (the official default is
    /// 100,000).
    pub fn new(limit: usize) -> Self {
        Self {
            messages: VecDeque::new(),
            next_id: 1,
            bytes: 0,
            limit,
        }
    }

    /// Numbers and keeps one trackable message (its bytes as sent); returns its id.
    pub fn push(&mut self, message: Bytes) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += message.len();
        self.messages.push_back((id, message));
        id
    }

    /// The peer processed every message up to `id`: they are dropped.
    pub fn ack(&mut self, id: u64) {
        while let Some((first, message)) = self.messages.front() {
            if *first > id {
                break;
            }
            self.bytes -= message.len();
            self.messages.pop_front();
        }
    }

    /// Whether the unacknowledged bytes reached the limit: the sender should wait for an
    /// `Ack` before sending more trackable messages.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.limit
    }

    /// The unacknowledged bytes.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// The id a `Sequence` announces after a reconnect: the oldest unacknowledged message,
    /// or the next id when every message was acknowledged.
    pub fn sequence_id(&self) -> u64 {
        self.messages.front().map_or(self.next_id, |(id, _)| *id)
    }

    /// The unacknowledged messages, oldest first: what a reconnect replays.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &Bytes> {
        self.messages.iter().map(|(_, message)| message)
    }
}

/// What one side received, numbered from 1: duplicates after a replay, and `Ack`s.
#[derive(Debug, Default)]
pub struct ReceivedSequence {
    /// The id the next trackable message has (0 until the first one: ids start at 1).
    next: u64,
    /// The highest id processed.
    processed: u64,
    /// The highest id acknowledged.
    acknowledged: u64,
}

impl ReceivedSequence {
    /// Counts one incoming trackable message; `false` when it is a duplicate to drop (a
    /// replay of something already processed).
    pub fn accept(&mut self) -> bool {
        let id = if self.next == 0 { 1 } else { self.next };
        self.next = id + 1;
        if id <= self.processed {
            return false;
        }
        self.processed = id;
        true
    }

    /// The peer announced that its next message has id `id` (it is about to replay).
    ///
    /// # Errors
    ///
    /// [`SEQUENCE_AHEAD`] when `id` skips messages never received: the connection cannot
    /// go on.
    pub fn sequence(&mut self, id: u64) -> Result<(), &'static str> {
        if id > self.processed + 1 {
            return Err(SEQUENCE_AHEAD);
        }
        self.next = id;
        // An Ack sent before the drop may have been lost with the socket: acknowledge
        // again, or a peer whose buffer is full would wait for ever.
        self.acknowledged = 0;
        Ok(())
    }

    /// The id to acknowledge, when something was processed since the last `Ack`.
    pub fn ack_due(&mut self) -> Option<u64> {
        (self.processed > self.acknowledged).then(|| {
            self.acknowledged = self.processed;
            self.processed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_fills_and_empties_with_acks() {
        let mut buffer = ReplayBuffer::new(10);
        assert_eq!(buffer.sequence_id(), 1);
        assert_eq!(buffer.push(Bytes::from_static(b"12345")), 1);
        assert!(!buffer.is_full());
        assert_eq!(buffer.push(Bytes::from_static(b"67890")), 2);
        assert!(buffer.is_full());
        buffer.ack(1);
        assert!(!buffer.is_full());
        assert_eq!(buffer.sequence_id(), 2);
        buffer.ack(7);
        assert_eq!(buffer.buffered_bytes(), 0);
        assert_eq!(buffer.sequence_id(), 3);
    }

    #[test]
    fn a_sequence_beyond_what_was_received_is_fatal() {
        let mut received = ReceivedSequence::default();
        assert!(received.accept());
        assert_eq!(received.sequence(3), Err(SEQUENCE_AHEAD));
        assert_eq!(received.sequence(2), Ok(()));
        assert!(received.accept());
    }

    #[test]
    fn a_sequence_acknowledges_again_what_was_processed() {
        let mut received = ReceivedSequence::default();
        assert!(received.accept());
        assert!(received.accept());
        assert_eq!(received.ack_due(), Some(2));
        // The Ack was lost with the socket; the peer replays both: duplicates, yet the
        // Ack must go out again.
        received.sequence(1).unwrap();
        assert!(!received.accept());
        assert!(!received.accept());
        assert_eq!(received.ack_due(), Some(2));
    }

    #[test]
    fn a_replay_from_the_start_drops_everything_seen() {
        let mut received = ReceivedSequence::default();
        for _ in 0..5 {
            assert!(received.accept());
        }
        received.sequence(1).unwrap();
        for _ in 0..5 {
            assert!(!received.accept());
        }
        assert!(received.accept());
        assert_eq!(received.ack_due(), Some(6));
    }
}
