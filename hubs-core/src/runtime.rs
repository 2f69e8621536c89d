//! One mounted hub: its value, options, routing and services, and the hub context for
//! code outside hub methods.

use std::collections::HashMap;
use std::sync::Arc;

use crate::base::authorization::{Requirement, Verdict};
use crate::base::connection_id::ConnectionId;
use crate::base::filter::HubFilter;
use crate::base::identity::User;
use crate::base::limit::LimitFilter;
use crate::base::meters::HubMeters;
use crate::base::outgoing::OutgoingFilters;
use crate::base::outgoing::{OutgoingFilter, TraceContext};
use crate::base::services::ServiceKey;
use crate::base::services::Services;
use crate::base::slow_consumer::{SlowConsumerCounters, SlowConsumerStats};
use crate::hub::clients::HubClients;
use crate::hub::definition::Hub;
use crate::hub::options::HubOptions;
use crate::hub::shared::HubShared;
use crate::routing::lifetime::LifetimeManager;
use crate::routing::presence::Presence;
use crate::routing::recipients::Groups;

/// A hub with everything it runs with. Created by the server when a hub is mounted.
pub struct HubRuntime<H: Hub> {
    pub(crate) hub: Arc<H>,
    /// What the hub's connections share: name, options, routing, services, meters.
    pub(crate) shared: Arc<HubShared>,
    /// Per method: the server's and the hub's filters, then the method's limits.
    pub(crate) chains: Vec<Arc<[Arc<dyn HubFilter>]>>,
    /// The server's and the hub's filters, around the connection hooks.
    pub(crate) hook_filters: Arc<[Arc<dyn HubFilter>]>,
    limits: Vec<Arc<LimitFilter>>,
    method_index: HashMap<String, usize>,
    /// The live connections an authentication refresh can reach, by id: kept only when
    /// the hub takes refreshes, so a hub that does not pays nothing.
    pub(crate) refreshable: Refreshable,
}

/// The connections of a hub that refreshes, by id.
pub(crate) type Refreshable =
    std::sync::Mutex<HashMap<ConnectionId, std::sync::Weak<crate::hub::context::ConnectionData>>>;

/// A service a hub injects is not registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hub `{hub}` injects the service {service}, which is not registered")]
pub struct MissingServiceError {
    /// The hub type.
    pub hub: &'static str,
    /// The missing service.
    pub service: String,
}

/// A hub names an authorization policy the server did not register.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hub `{hub}` requires the policy \"{policy}\", which is not registered (`Server::policy`)")]
pub struct UnknownPolicyError {
    /// The hub type.
    pub hub: &'static str,
    /// The policy's name.
    pub policy: String,
}

/// Why a hub could not be mounted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// A service is missing.
    #[error(transparent)]
    MissingService(#[from] MissingServiceError),
    /// A policy is missing.
    #[error(transparent)]
    UnknownPolicy(#[from] UnknownPolicyError),
}

impl<H: Hub> HubRuntime<H> {
    /// Sets up `hub` with `options` and the server's `services`.
    ///
    /// # Errors
    ///
    /// [`MissingServiceError`] when a method injects a service `services` lacks.
    pub fn new(
        hub: H,
        mut options: HubOptions,
        services: Arc<Services>,
    ) -> Result<Arc<Self>, MountError> {
        if let Some(missing) = H::services()
            .into_iter()
            .find(|key: &ServiceKey| !services.contains(key.type_id, key.key))
        {
            return Err(MissingServiceError {
                hub: std::any::type_name::<H>(),
                service: missing.to_string(),
            }
            .into());
        }
        let required = H::authorization()
            .into_iter()
            .chain(H::methods().iter().filter_map(|m| m.authorize));
        for requirement in required {
            if let Some(policy) = requirement
                .policies
                .iter()
                .find(|name| !options.policies.contains(name))
            {
                return Err(UnknownPolicyError {
                    hub: std::any::type_name::<H>(),
                    policy: (*policy).to_owned(),
                }
                .into());
            }
        }
        let method_index = H::methods()
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.to_ascii_lowercase(), i))
            .collect();
        let name = options.name.clone().unwrap_or_else(|| {
            let full = std::any::type_name::<H>();
            full.rsplit("::").next().unwrap_or(full).to_owned()
        });
        let meters = HubMeters::with_methods(&name, H::methods().len());
        let name: Arc<str> = Arc::from(name);
        let mut outgoing_filters: Vec<Arc<dyn OutgoingFilter>> = vec![Arc::new(TraceContext)];
        outgoing_filters.extend(options.outgoing_filters.iter().cloned());
        let outgoing = OutgoingFilters::new(name.clone(), outgoing_filters);
        let mut limits = Vec::new();
        let chains = H::methods()
            .iter()
            .map(|method| {
                let mut chain = options.filters.clone();
                for limit in method.limits {
                    let filter = Arc::new(LimitFilter::new(method.name, *limit));
                    limits.push(filter.clone());
                    chain.push(filter);
                }
                Arc::from(chain)
            })
            .collect();
        let hook_filters = Arc::from(options.filters.clone());
        let shared = Arc::new(HubShared {
            lifetime: options.take_lifetime(),
            options,
            services,
            shutdown: tokio_util::sync::CancellationToken::new(),
            slow_consumers: Arc::new(SlowConsumerCounters::new(meters.clone())),
            meters,
            outgoing,
            name,
        });
        Ok(Arc::new(Self {
            hub: Arc::new(hub),
            shared,
            chains,
            hook_filters,
            limits,
            method_index,
            refreshable: std::sync::Mutex::default(),
        }))
    }

    /// The hub value.
    pub fn hub(&self) -> &Arc<H> {
        &self.hub
    }

    /// The hub's name in metrics, spans and logs.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Forgets what the method limits counted for a connection that closed.
    pub(crate) fn forget(&self, connection: &ConnectionId) {
        for limit in &self.limits {
            limit.forget(connection);
        }
        if self.shared.options.refreshes_authentication() {
            self.refreshable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(connection);
        }
    }

    /// Checks `requirement` for `user` with the server's policies.
    pub(crate) async fn check(
        &self,
        requirement: &Requirement,
        user: Option<Arc<User>>,
        method: Option<&'static str>,
    ) -> Verdict {
        self.shared
            .options
            .policies
            .check(requirement, user, self.shared.name.clone(), method)
            .await
    }

    /// The hub's options.
    pub fn options(&self) -> &HubOptions {
        &self.shared.options
    }

    /// The services methods may inject.
    pub fn services(&self) -> &Services {
        &self.shared.services
    }

    /// The lifetime manager routing this hub's messages.
    pub fn lifetime_manager(&self) -> &Arc<dyn LifetimeManager> {
        &self.shared.lifetime
    }

    /// What the hub's slow-consumer policy has cost so far.
    pub fn slow_consumer_stats(&self) -> SlowConsumerStats {
        self.shared.slow_consumers.stats()
    }

    /// The Clients targets, for use outside hub methods.
    pub fn clients(&self) -> HubClients<H> {
        HubClients::of(&self.shared)
    }

    /// Group membership.
    pub fn groups(&self) -> Groups {
        self.shared.groups()
    }

    /// Who is connected, on every server.
    pub fn presence(&self) -> Presence {
        self.shared.presence()
    }

    /// A handle for code outside hub methods.
    pub fn context(self: &Arc<Self>) -> HubContext<H> {
        HubContext {
            runtime: self.clone(),
        }
    }

    /// The method a wire name refers to, ignoring case.
    pub(crate) fn method(&self, name: &str) -> Option<usize> {
        if let Some(i) = H::methods().iter().position(|m| m.name == name) {
            return Some(i);
        }
        self.method_index.get(&name.to_ascii_lowercase()).copied()
    }
}

/// Reaches a hub's clients and groups from outside its methods (`IHubContext`): from a
/// background task, an HTTP handler, a timer. Cheap to clone.
///
/// ```no_run
/// # async fn f<H: hubs_core::Hub>(hub: hubs_core::HubContext<H>) -> Result<(), hubs_core::SendError> where H::Client: hubs_core::ClientFamily<Proxy<hubs_core::Many> = hubs_core::Recipients<hubs_core::Many>> {
/// // An untyped hub; with `#[hub(client = Trait)]`, `hub.clients().all().tick(1)`.
/// hub.clients().all().send("Tick", (1,)).await?;
/// # Ok(())
/// # }
/// ```
pub struct HubContext<H: Hub> {
    runtime: Arc<HubRuntime<H>>,
}

impl<H: Hub> Clone for HubContext<H> {
    fn clone(&self) -> Self {
        Self {
            runtime: self.runtime.clone(),
        }
    }
}

impl<H: Hub> HubContext<H> {
    /// The Clients targets (no caller-relative ones: there is no caller).
    pub fn clients(&self) -> HubClients<H> {
        self.runtime.clients()
    }

    /// Group membership.
    pub fn groups(&self) -> Groups {
        self.runtime.groups()
    }

    /// Who is connected, on every server; closing any connection by id.
    pub fn presence(&self) -> Presence {
        self.runtime.presence()
    }

    /// The hub value.
    pub fn hub(&self) -> &Arc<H> {
        &self.runtime.hub
    }

    /// What the hub's slow-consumer policy has cost so far.
    pub fn slow_consumer_stats(&self) -> SlowConsumerStats {
        self.runtime.slow_consumer_stats()
    }

    /// The runtime behind this context.
    pub fn runtime(&self) -> &Arc<HubRuntime<H>> {
        &self.runtime
    }
}
