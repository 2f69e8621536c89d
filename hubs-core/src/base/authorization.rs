//! Authorization: what a hub or one of its methods requires of the caller
//! ([`Requirement`], declared with `#[hub(authorize ...)]`), and the named [`Policy`]s a
//! server registers for requirements to name.
//!
//! A hub's requirement is checked on every request that opens or carries a connection
//! (`401` for an anonymous or refused credential, `403` for a user who does not qualify);
//! a method's on every call (the caller gets
//! `Failed to invoke 'X' because user is unauthorized` and the connection stays open).

use std::collections::HashMap;
use std::sync::Arc;

use crate::base::future::BoxFuture;
use crate::base::identity::User;

/// What a hub or a method requires: an authenticated user, with at least one of `roles`
/// (when any are named) and passing every one of `policies`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requirement {
    /// At least one of these roles (none named: any user).
    pub roles: &'static [&'static str],
    /// Every one of these policies, by the names the server registered them under.
    pub policies: &'static [&'static str],
}

/// The outcome of checking a [`Requirement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The caller qualifies.
    Allowed,
    /// No authenticated user (`401`).
    Unauthenticated,
    /// A user who does not qualify (`403`).
    Forbidden,
}

/// What a policy is asked about.
#[derive(Clone, Debug)]
pub struct PolicyCheck {
    /// The authenticated user.
    pub user: Arc<User>,
    /// The hub's name.
    pub hub: Arc<str>,
    /// The method's wire name, for a method's requirement; `None` for the hub's (checked
    /// when a connection opens).
    pub method: Option<&'static str>,
}

/// A named, async authorization rule over the user, the hub and the method. Closures are
/// policies:
///
/// ```
/// use hubs_core::{Policy, PolicyCheck};
///
/// let adults = |request: PolicyCheck| async move {
///     request.user.claim("age").and_then(|age| age.as_u64()).is_some_and(|age| age >= 18)
/// };
/// fn takes(_: impl Policy) {}
/// takes(adults);
/// ```
pub trait Policy: Send + Sync + 'static {
    /// Whether the request passes.
    fn evaluate(&self, request: PolicyCheck) -> BoxFuture<bool>;
}

impl<F, Fut> Policy for F
where
    F: Fn(PolicyCheck) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    fn evaluate(&self, request: PolicyCheck) -> BoxFuture<bool> {
        Box::pin(self(request))
    }
}

/// The policies a server registered, by name.
#[derive(Clone, Default)]
pub struct Policies {
    policies: HashMap<String, Arc<dyn Policy>>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.policies.keys()).finish()
    }
}

impl Policies {
    /// Registers `policy` as `name` (replacing one of the same name).
    pub fn insert(&mut self, name: impl Into<String>, policy: impl Policy) {
        self.policies.insert(name.into(), Arc::new(policy));
    }

    /// Whether a policy of that name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.policies.contains_key(name)
    }

    /// Checks `requirement` for `user`.
    pub async fn check(
        &self,
        requirement: &Requirement,
        user: Option<Arc<User>>,
        hub: Arc<str>,
        method: Option<&'static str>,
    ) -> Verdict {
        let Some(user) = user else {
            return Verdict::Unauthenticated;
        };
        if !requirement.roles.is_empty() && !requirement.roles.iter().any(|r| user.is_in_role(r)) {
            return Verdict::Forbidden;
        }
        for name in requirement.policies {
            let Some(policy) = self.policies.get(*name) else {
                // Mounting checks the names; a policy that vanished refuses.
                return Verdict::Forbidden;
            };
            let request = PolicyCheck {
                user: user.clone(),
                hub: hub.clone(),
                method,
            };
            if !policy.evaluate(request).await {
                return Verdict::Forbidden;
            }
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn roles_are_any_of_and_policies_all_of() {
        let mut policies = Policies::default();
        policies.insert("yes", |_: PolicyCheck| async { true });
        policies.insert("no", |_: PolicyCheck| async { false });
        let hub: Arc<str> = Arc::from("Hub");
        let admin = Some(Arc::new(User::new("1").with_role("admin")));
        let check = |req: Requirement, user: Option<Arc<User>>| {
            let (policies, hub) = (policies.clone(), hub.clone());
            async move { policies.check(&req, user, hub, Some("M")).await }
        };
        let any = Requirement::default();
        assert_eq!(check(any, None).await, Verdict::Unauthenticated);
        assert_eq!(check(any, admin.clone()).await, Verdict::Allowed);
        let roles = Requirement {
            roles: &["ops", "admin"],
            policies: &[],
        };
        assert_eq!(check(roles, admin.clone()).await, Verdict::Allowed);
        let other = Some(Arc::new(User::new("2")));
        assert_eq!(check(roles, other).await, Verdict::Forbidden);
        let both = Requirement {
            roles: &[],
            policies: &["yes", "no"],
        };
        assert_eq!(check(both, admin.clone()).await, Verdict::Forbidden);
        let unknown = Requirement {
            roles: &[],
            policies: &["missing"],
        };
        assert_eq!(check(unknown, admin).await, Verdict::Forbidden);
    }
}
