//! What every connection of one hub shares, whatever the hub's type: its name, options,
//! routing, services, outgoing filters, meters and shutdown. The [`Context`] of a hub
//! method holds it, so the hub model never names the runtime above it.
//!
//! [`Context`]: crate::hub::context::Context

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::base::meters::HubMeters;
use crate::base::outgoing::OutgoingFilters;
use crate::base::services::Services;
use crate::base::slow_consumer::SlowConsumerCounters;
use crate::hub::options::HubOptions;
use crate::routing::lifetime::LifetimeManager;
use crate::routing::presence::Presence;
use crate::routing::recipients::Groups;

/// One hub's state, shared by its runtime, its connections and its hub contexts.
pub(crate) struct HubShared {
    /// The hub's name (its type's, or `HubOptions::name`).
    pub(crate) name: Arc<str>,
    pub(crate) options: HubOptions,
    pub(crate) lifetime: Arc<dyn LifetimeManager>,
    pub(crate) services: Arc<Services>,
    /// Cancelled when the hub shuts down: every connection closes.
    pub(crate) shutdown: CancellationToken,
    pub(crate) slow_consumers: Arc<SlowConsumerCounters>,
    pub(crate) meters: Arc<HubMeters>,
    pub(crate) outgoing: OutgoingFilters,
}

impl HubShared {
    /// Group membership, through the hub's lifetime manager.
    pub(crate) fn groups(&self) -> Groups {
        Groups::new(self.lifetime.clone())
    }

    /// Who is connected, through the hub's lifetime manager.
    pub(crate) fn presence(&self) -> Presence {
        Presence::new(self.lifetime.clone())
    }
}

impl std::fmt::Debug for HubShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubShared")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
