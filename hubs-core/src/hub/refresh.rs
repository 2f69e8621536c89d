//! Authentication refresh (ASP.NET Core 11's `EnableAuthenticationRefresh`, the official
//! 11.0 client's `withAuthenticationRefresh()`): a live connection takes a fresh
//! credential, and its new claims, without reconnecting.

use std::fmt;
use std::sync::Arc;

use crate::base::identity::User;

type Accept = Arc<dyn Fn(Option<&User>, &User) -> bool + Send + Sync>;

/// How a hub takes refreshed credentials: turn it on with
/// [`HubOptions::authentication_refresh`](crate::HubOptions::authentication_refresh).
///
/// A refresh (`POST {hub}/refresh` with the fresh bearer token and the connection token)
/// is authenticated and authorized as the hub's requests are. By default it is refused
/// with `403 {"error":"permission_change_rejected"}` when the new credential belongs to
/// another user id, and the connection stays open, unchanged; [`accept`](Self::accept)
/// adds the application's own rule. Accepted, the new user is what later invocations see
/// ([`Context::user`](crate::Context::user), per-method authorization), the close-on-expiry
/// timer follows the new expiry, and the hub's `on_authentication_refreshed` hook runs.
/// Routing keeps the connection-start identity: its user id and its groups.
///
/// On long polling every poll carries the credential. For a client that refreshes when
/// told (the official clients from 11.0 on, [`refreshes_on_conflict`]), expiry is checked
/// per poll rather than by the close timer: a poll after expiry is answered `409
/// {"error":"authentication_refresh_required"}`, the client refreshes and polls again, and
/// nothing queued for it is lost. Older clients keep the close at expiry.
///
/// ```
/// use hubs_core::{AuthenticationRefresh, HubOptions};
///
/// let options = HubOptions::default()
///     .close_on_authentication_expiration(true)
///     .authentication_refresh(
///         AuthenticationRefresh::new().accept(|_old, new| !new.is_in_role("suspended")),
///     );
/// assert!(options.refreshes_authentication());
/// ```
#[derive(Clone, Default)]
pub struct AuthenticationRefresh {
    pub(crate) allow_user_change: bool,
    pub(crate) accept: Option<Accept>,
}

impl AuthenticationRefresh {
    /// Refreshes of the same user id, accepted when the hub's authorization accepts them.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts a credential of another user id (default: refused). The connection
    /// still routes as the user it started with.
    #[must_use]
    pub fn allow_user_change(mut self, allow: bool) -> Self {
        self.allow_user_change = allow;
        self
    }

    /// The application's rule, after the built-in checks: given the connection's current
    /// user and the new one, `false` refuses the refresh
    /// (`403 {"error":"permission_change_rejected"}`, the connection unchanged).
    #[must_use]
    pub fn accept(
        mut self,
        rule: impl Fn(Option<&User>, &User) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.accept = Some(Arc::new(rule));
        self
    }

    /// Whether `new` may replace `current`.
    pub(crate) fn accepts(&self, current: Option<&User>, new: &User) -> bool {
        let same_user = current.and_then(User::id) == new.id();
        (same_user || self.allow_user_change)
            && self.accept.as_ref().is_none_or(|rule| rule(current, new))
    }
}

impl fmt::Debug for AuthenticationRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationRefresh")
            .field("allow_user_change", &self.allow_user_change)
            .field("accept", &self.accept.is_some())
            .finish()
    }
}

/// Why a refresh was not applied; the transport turns each into its status and
/// `{"error": code}` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshRefused {
    /// The hub did not opt in: `404 refresh_disabled`.
    Disabled,
    /// No live connection of this hub has the id (on this server): `404
    /// connection_not_found`.
    NotFound,
    /// Another user, or the application's rule said no: `403 permission_change_rejected`.
    Rejected,
}

/// An accepted refresh: the new credential's remaining lifetime, for the answer's
/// `tokenLifetimeSeconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refreshed {
    /// Whole seconds until the new credential expires (`None`: it does not).
    pub lifetime_seconds: Option<u64>,
}

/// Whole seconds left before `user`'s credential expires, when it expires and is not
/// expired yet (what negotiate and a refresh answer as `tokenLifetimeSeconds`).
pub fn token_lifetime_seconds(user: &User) -> Option<u64> {
    let left = user
        .expires_at()?
        .duration_since(std::time::SystemTime::now())
        .ok()?
        .as_secs();
    (left > 0).then_some(left)
}

/// Whether the client that sent `headers` refreshes its credential when a long poll is
/// answered `409 authentication_refresh_required`: the official clients from 11.0 on,
/// which announce themselves as `Microsoft SignalR/<major>.<minor> (…)` in `User-Agent`
/// (browsers: `X-SignalR-User-Agent`). An older client would end its connection on that
/// answer, so on long polling it keeps the close at expiry instead.
pub fn refreshes_on_conflict(headers: &http::HeaderMap) -> bool {
    ["x-signalr-user-agent", "user-agent"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .find_map(|agent| agent.strip_prefix("Microsoft SignalR/"))
        .and_then(|version| version.split(['.', ' ']).next()?.parse::<u32>().ok())
        .is_some_and(|major| major >= 11)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleven_and_later_refresh_on_a_conflict() {
        let agent = |name: &'static str, value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(name, http::HeaderValue::from_static(value));
            headers
        };
        assert!(refreshes_on_conflict(&agent(
            "user-agent",
            "Microsoft SignalR/11.0 (11.0.0; Linux; NodeJS; v20.19.2)"
        )));
        assert!(refreshes_on_conflict(&agent(
            "x-signalr-user-agent",
            "Microsoft SignalR/12.1 (12.1.0; Unknown OS; Browser; Unknown Runtime Version)"
        )));
        assert!(!refreshes_on_conflict(&agent(
            "user-agent",
            "Microsoft SignalR/10.0 (10.0.11; Linux; NodeJS; v20.19.2)"
        )));
        assert!(!refreshes_on_conflict(&agent("user-agent", "curl/8.0")));
        assert!(!refreshes_on_conflict(&http::HeaderMap::new()));
    }

    #[test]
    fn the_same_user_by_default_and_the_rule_after() {
        let ann = User::new("ann");
        let bob = User::new("bob");
        let refresh = AuthenticationRefresh::new();
        assert!(refresh.accepts(Some(&ann), &User::new("ann").with_role("admin")));
        assert!(
            !refresh.accepts(Some(&ann), &bob),
            "another user is refused"
        );
        assert!(
            AuthenticationRefresh::new()
                .allow_user_change(true)
                .accepts(Some(&ann), &bob)
        );
        let strict = AuthenticationRefresh::new().accept(|_, new| new.is_in_role("member"));
        assert!(!strict.accepts(Some(&ann), &User::new("ann")));
        assert!(strict.accepts(Some(&ann), &User::new("ann").with_role("member")));
    }

    #[test]
    fn the_lifetime_is_whole_seconds_left() {
        let in_a_minute = std::time::SystemTime::now() + std::time::Duration::from_secs(61);
        let lifetime = token_lifetime_seconds(&User::new("ann").with_expiry(in_a_minute));
        assert!(matches!(lifetime, Some(59..=61)), "{lifetime:?}");
        assert_eq!(token_lifetime_seconds(&User::new("ann")), None);
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        assert_eq!(
            token_lifetime_seconds(&User::new("ann").with_expiry(past)),
            None
        );
    }
}
