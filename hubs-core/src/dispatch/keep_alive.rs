//! Keep-alive and client timeout, as a clock the read loop ticks: a Ping once the
//! keep-alive interval has passed since the last write, and the end of a client that has
//! been silent for the client timeout (counted only once it has sent its first Ping).

use std::time::Duration;

use tokio::time::Instant;

use crate::hub::options::HubOptions;

/// What a beat calls for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing.
    Quiet,
    /// Send a Ping.
    Ping,
    /// The client has been silent too long.
    ClientTimedOut,
}

#[derive(Debug)]
pub(crate) struct KeepAlive {
    interval: Duration,
    client_timeout: Duration,
    beat: Duration,
    last_write: Instant,
    last_received: Instant,
    client_pinged: bool,
}

impl KeepAlive {
    pub(crate) fn new(options: &HubOptions, now: Instant) -> Self {
        let beat = options
            .keep_alive_interval
            .min(options.client_timeout / 2)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        Self {
            interval: options.keep_alive_interval,
            client_timeout: options.client_timeout,
            beat,
            last_write: now,
            last_received: now,
            client_pinged: false,
        }
    }

    /// How often [`on_beat`](Self::on_beat) should run (at most 1 s, as the official
    /// server's heartbeat).
    pub(crate) fn period(&self) -> Duration {
        self.beat
    }

    /// Something arrived from the client.
    pub(crate) fn received(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// The client sent a Ping: from now on its silence is timed.
    pub(crate) fn client_pinged(&mut self) {
        self.client_pinged = true;
    }

    /// One beat. `wrote` tells whether anything was queued since the last beat; while
    /// `reading` is false the server is not reading (it waits for an upload to drain), so
    /// the client's silence is not counted.
    ///
    /// Writes are noticed at the next beat, so the longest silence is the interval plus
    /// one beat, as on the official server.
    pub(crate) fn on_beat(&mut self, now: Instant, wrote: bool, reading: bool) -> Beat {
        if !reading {
            self.last_received = now;
        }
        if self.client_pinged && now.duration_since(self.last_received) > self.client_timeout {
            return Beat::ClientTimedOut;
        }
        if wrote {
            self.last_write = now;
        } else if now.duration_since(self.last_write) + self.beat / 2 >= self.interval {
            self.last_write = now;
            return Beat::Ping;
        }
        Beat::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> (KeepAlive, Instant) {
        let options = HubOptions::default()
            .keep_alive_interval(Duration::from_secs(15))
            .client_timeout(Duration::from_secs(30));
        let now = Instant::now();
        (KeepAlive::new(&options, now), now)
    }

    #[test]
    fn pings_after_the_interval_without_writes() {
        let (mut keep_alive, start) = clock();
        assert_eq!(keep_alive.period(), Duration::from_secs(1));
        let at = |s: u64| start + Duration::from_secs(s);
        for s in 1..15 {
            assert_eq!(keep_alive.on_beat(at(s), false, true), Beat::Quiet, "{s}");
        }
        assert_eq!(keep_alive.on_beat(at(15), false, true), Beat::Ping);
        assert_eq!(keep_alive.on_beat(at(16), false, true), Beat::Quiet);
        // A write restarts the interval.
        assert_eq!(keep_alive.on_beat(at(20), true, true), Beat::Quiet);
        assert_eq!(keep_alive.on_beat(at(34), false, true), Beat::Quiet);
        assert_eq!(keep_alive.on_beat(at(35), false, true), Beat::Ping);
    }

    #[test]
    fn the_client_timeout_starts_with_its_first_ping_and_pauses_while_not_reading() {
        let (mut keep_alive, start) = clock();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_ne!(keep_alive.on_beat(at(40), true, true), Beat::ClientTimedOut);
        keep_alive.client_pinged();
        keep_alive.received(at(40));
        assert_ne!(keep_alive.on_beat(at(70), true, true), Beat::ClientTimedOut);
        // Not reading: the silence is the server's, not the client's.
        assert_ne!(
            keep_alive.on_beat(at(100), true, false),
            Beat::ClientTimedOut
        );
        assert_eq!(
            keep_alive.on_beat(at(131), true, true),
            Beat::ClientTimedOut
        );
    }
}
