//! Authentication refresh on a connection: the timer of `with_authentication_refresh`, and
//! the refreshes under way (the timer's and `refresh_authentication`'s), which end with
//! the connection they belong to.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::{Instant, Sleep};

use super::{Phase, Supervisor};
use crate::command::Refreshed;
use crate::error::RefreshError;
use crate::events::{ConnectionEvent, ConnectionState};
use crate::transport::auth::{Auth, refresh_delay};

type Outcome = Result<Option<Duration>, RefreshError>;

/// A refresh under way, and who waits for it (none for the timer's).
type Running = Pin<Box<dyn Future<Output = (Outcome, Option<Refreshed>)> + Send>>;

/// What the refresh side of a connection reports.
pub(super) enum RefreshEvent {
    /// The timer fired.
    Due,
    /// A refresh ended.
    Done(Outcome, Option<Refreshed>),
}

/// The refresh side of one negotiated connection (kept while it resumes, dropped with it).
pub(super) struct Refreshing {
    auth: Auth,
    /// Armed with `with_authentication_refresh` when the server reported a lifetime.
    timer: Option<Pin<Box<Sleep>>>,
    running: FuturesUnordered<Running>,
}

impl Refreshing {
    pub(super) fn new(auth: Auth) -> Self {
        Self {
            auth,
            timer: None,
            running: FuturesUnordered::new(),
        }
    }

    /// Arms the timer for a token that lives `lifetime` (replacing the one armed).
    fn arm(&mut self, lifetime: Duration, margin: Duration) {
        let delay = refresh_delay(lifetime, margin);
        let deadline = Instant::now()
            .checked_add(delay)
            .unwrap_or_else(Instant::now);
        self.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
    }

    fn begin(&mut self, reply: Option<Refreshed>) {
        let auth = self.auth.clone();
        self.running
            .push(Box::pin(async move { (auth.refresh().await, reply) }));
    }

    /// The next thing to report: the timer (only while `live`: a timer due meanwhile
    /// fires once the connection is connected again), or a refresh that ended. Cancel
    /// safe.
    pub(super) async fn next(&mut self, live: bool) -> RefreshEvent {
        let Self { timer, running, .. } = self;
        let timer = async {
            match timer {
                Some(timer) if live => timer.as_mut().await,
                _ => std::future::pending().await,
            }
        };
        let done = async {
            if running.is_empty() {
                std::future::pending::<()>().await;
            }
            running.next().await
        };
        tokio::select! {
            () = timer => RefreshEvent::Due,
            Some((outcome, reply)) = done => RefreshEvent::Done(outcome, reply),
        }
    }
}

impl Supervisor {
    /// Whether the connection is connected (not resuming, nor waiting for a resume's
    /// confirmation).
    pub(super) fn live(&self) -> bool {
        matches!(self.phase, Phase::Connected(_))
            && self.status.borrow().state == ConnectionState::Connected
    }

    /// The refresh side of a connection that just opened: its timer starts now, after
    /// the handshake, from negotiate's lifetime.
    pub(super) fn refreshing(
        &self,
        auth: Option<Auth>,
        lifetime: Option<Duration>,
    ) -> Option<Refreshing> {
        let mut refreshing = Refreshing::new(auth?);
        if self.config.auto_refresh
            && let Some(lifetime) = lifetime
        {
            refreshing.arm(lifetime, self.config.refresh_margin);
        }
        Some(refreshing)
    }

    /// `refresh_authentication`.
    pub(super) fn refresh(&mut self, reply: Refreshed) {
        if !self.live() {
            let _ = reply.send(Err(RefreshError::NotConnected));
            return;
        }
        match &mut self.refreshing {
            Some(refreshing) => refreshing.begin(Some(reply)),
            None => {
                let _ = reply.send(Err(RefreshError::NotHttp));
            }
        }
    }

    pub(super) fn refresh_event(&mut self, event: RefreshEvent) {
        let Some(refreshing) = &mut self.refreshing else {
            return;
        };
        match event {
            RefreshEvent::Due => {
                tracing::debug!("refreshing authentication");
                refreshing.timer = None;
                refreshing.begin(None);
            }
            RefreshEvent::Done(Ok(lifetime), reply) => {
                tracing::debug!(?lifetime, "authentication refreshed");
                if self.config.auto_refresh
                    && let Some(lifetime) = lifetime
                {
                    refreshing.arm(lifetime, self.config.refresh_margin);
                }
                self.emit(ConnectionEvent::AuthenticationRefreshed(lifetime));
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(lifetime));
                }
            }
            RefreshEvent::Done(Err(error), reply) => {
                tracing::warn!(%error, "Authentication refresh failed");
                self.emit(ConnectionEvent::AuthenticationRefreshFailed(
                    error.to_string(),
                ));
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}
