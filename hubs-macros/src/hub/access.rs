//! `authorize` and `limit`: who may call, and how often. Parsed here, each with its
//! errors at the user's span; expanded into `Requirement`s and `Limit`s.
//!
//! ```text
//! #[hub(authorize)]                                   any authenticated user
//! #[hub(authorize(role = "admin"))]                   … with this role (repeatable: any of)
//! #[hub(authorize(roles = "admin, ops"))]             … with one of these roles
//! #[hub(authorize(policy = "adults"))]                … passing this server policy (all of)
//! #[hub(limit(rate = "10/s"))]                        10 calls a second per connection
//! #[hub(limit(rate = "100/min", burst = 20, per = "user"))]
//! #[hub(limit(concurrency = 2))]                      2 calls at once per connection
//! ```

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;
use syn::meta::ParseNestedMeta;

use crate::attr;

/// An `authorize` option.
#[derive(Clone, Default)]
pub(crate) struct Authorize {
    pub(crate) roles: Vec<String>,
    pub(crate) policies: Vec<String>,
    pub(crate) span: Option<Span>,
}

#[derive(Clone, Copy)]
pub(crate) enum Scope {
    Connection,
    User,
}

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Rate {
        count: u32,
        period_ms: u64,
        burst: u32,
    },
    Concurrency {
        max: u32,
    },
}

/// A `limit(...)` option.
#[derive(Clone)]
pub(crate) struct LimitSpec {
    pub(crate) kind: Kind,
    pub(crate) scope: Scope,
    pub(crate) span: Span,
}

fn names(lit: &LitStr, what: &str) -> syn::Result<Vec<String>> {
    let names: Vec<String> = lit
        .value()
        .split(',')
        .map(|name| name.trim().to_owned())
        .collect();
    if names.iter().any(String::is_empty) {
        return Err(syn::Error::new(lit.span(), format!("empty {what} name")));
    }
    Ok(names)
}

/// Reads `authorize` or `authorize(...)` at `meta`.
pub(crate) fn parse_authorize(meta: &ParseNestedMeta<'_>) -> syn::Result<Authorize> {
    let mut authorize = Authorize {
        span: Some(meta.path.segments[0].ident.span()),
        ..Authorize::default()
    };
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            if inner.path.is_ident("role") || inner.path.is_ident("roles") {
                let lit: LitStr = inner.value()?.parse()?;
                let roles = names(&lit, "role")?;
                if inner.path.is_ident("role") && roles.len() > 1 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "one role per `role`; list several with `roles = \"a, b\"`",
                    ));
                }
                authorize.roles.extend(roles);
                Ok(())
            } else if inner.path.is_ident("policy") {
                let lit: LitStr = inner.value()?.parse()?;
                let policy = lit.value();
                if policy.trim().is_empty() {
                    return Err(syn::Error::new(lit.span(), "empty policy name"));
                }
                authorize.policies.push(policy.trim().to_owned());
                Ok(())
            } else {
                Err(attr::unknown(
                    &inner,
                    "authorize",
                    &["role", "roles", "policy"],
                ))
            }
        })?;
    } else if meta.input.peek(syn::Token![=]) {
        return Err(meta.error(
            "`authorize` takes options in parentheses: `authorize(role = \"admin\")`, or none",
        ));
    }
    Ok(authorize)
}

/// `"10/s"` → (10, 1000).
fn rate(lit: &LitStr) -> syn::Result<(u32, u64)> {
    let bad = || {
        syn::Error::new(
            lit.span(),
            "expected a rate like \"10/s\": a count of at least 1, `/`, and `s`, `min` or `h`",
        )
    };
    let value = lit.value();
    let (count, unit) = value.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period_ms = match unit.trim() {
        "s" | "sec" | "second" => 1_000,
        "min" | "minute" => 60_000,
        "h" | "hour" => 3_600_000,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(bad());
    }
    Ok((count, period_ms))
}

fn at_least_one(meta: &ParseNestedMeta<'_>, what: &str) -> syn::Result<u32> {
    let lit: syn::LitInt = meta.value()?.parse()?;
    let value: u32 = lit.base10_parse()?;
    if value == 0 {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{what}` must be at least 1"),
        ));
    }
    Ok(value)
}

/// Reads `limit(...)` at `meta`.
pub(crate) fn parse_limit(meta: &ParseNestedMeta<'_>) -> syn::Result<LimitSpec> {
    let span = meta.path.segments[0].ident.span();
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta
            .error("`limit` needs options: `limit(rate = \"10/s\")` or `limit(concurrency = 2)`"));
    }
    let mut rate_of = None;
    let mut burst = None;
    let mut concurrency = None;
    let mut scope = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("rate") {
            attr::once(&mut rate_of, &inner, "rate", |m| rate(&m.value()?.parse()?))
        } else if inner.path.is_ident("burst") {
            attr::once(&mut burst, &inner, "burst", |m| at_least_one(m, "burst"))
        } else if inner.path.is_ident("concurrency") {
            attr::once(&mut concurrency, &inner, "concurrency", |m| {
                at_least_one(m, "concurrency")
            })
        } else if inner.path.is_ident("per") {
            attr::once(&mut scope, &inner, "per", |m| {
                let lit: LitStr = m.value()?.parse()?;
                match lit.value().as_str() {
                    "connection" => Ok(Scope::Connection),
                    "user" => Ok(Scope::User),
                    _ => Err(syn::Error::new(
                        lit.span(),
                        "`per` is \"connection\" (the default) or \"user\"",
                    )),
                }
            })
        } else {
            Err(attr::unknown(
                &inner,
                "limit",
                &["rate", "burst", "concurrency", "per"],
            ))
        }
    })?;
    let kind = match (rate_of, concurrency) {
        (Some((count, period_ms)), None) => Kind::Rate {
            count,
            period_ms,
            burst: burst.unwrap_or(count),
        },
        (None, Some(max)) if burst.is_none() => Kind::Concurrency { max },
        (None, Some(_)) => {
            return Err(syn::Error::new(
                span,
                "`burst` goes with `rate`, not with `concurrency`",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(syn::Error::new(
                span,
                "a `limit` sets either `rate` or `concurrency`; give each its own `limit(...)`",
            ));
        }
        (None, None) => {
            return Err(syn::Error::new(
                span,
                "`limit` needs `rate = \"10/s\"` or `concurrency = N`",
            ));
        }
    };
    Ok(LimitSpec {
        kind,
        scope: scope.unwrap_or(Scope::Connection),
        span,
    })
}

/// `Requirement { roles: &[..], policies: &[..] }`.
pub(crate) fn requirement(p: &TokenStream, authorize: &Authorize) -> TokenStream {
    let roles = &authorize.roles;
    let policies = &authorize.policies;
    quote!(#p::Requirement { roles: &[#(#roles),*], policies: &[#(#policies),*] })
}

/// `Limit::Rate { .. }` or `Limit::Concurrency { .. }`.
pub(crate) fn limit(p: &TokenStream, spec: &LimitSpec) -> TokenStream {
    let scope = match spec.scope {
        Scope::Connection => quote!(#p::Scope::Connection),
        Scope::User => quote!(#p::Scope::User),
    };
    match spec.kind {
        Kind::Rate {
            count,
            period_ms,
            burst,
        } => {
            quote!(#p::Limit::Rate { count: #count, period_ms: #period_ms, burst: #burst, scope: #scope })
        }
        Kind::Concurrency { max } => quote!(#p::Limit::Concurrency { max: #max, scope: #scope }),
    }
}
