//! The guide: hubs from a first hub to production, one chapter per page.
//!
//! Every code block in these pages is a doctest: it compiles against this crate and
//! runs (most through the in-process test kit, `hubs::testing::TestServer`,
//! so a chapter shows a hub *and* a client calling it). Those that serve bind a free
//! port of the loopback and stop, the TLS one makes its certificate, and the Redis one
//! starts a `redis-server` of its own (it passes without running where none is
//! installed).
//!
//! The chapters need the crate's optional features to show their code: build these pages
//! with `cargo doc -p hubs-signalr --all-features --open`. Each chapter names a runnable
//! example in `examples/` and the tests in `tests/tests/` that prove what it says.
//!
//! 1. [First hub in five minutes](first_hub)
//! 2. [Typed clients and client results](typed_clients)
//! 3. [Streaming](streaming)
//! 4. [Groups, users and presence](groups_and_presence)
//! 5. [Identity, authorization and token refresh](identity)
//! 6. [Filters and limits](filters_and_limits)
//! 7. [Scaling out over Redis, and what survives a node's death](scaling_out)
//! 8. [Slow consumers and back-pressure](back_pressure)
//! 9. [The Rust client](rust_client)
//! 10. [TypeScript typings](typescript)
//! 11. [Testing a hub with the test kit](testing)
//! 12. [Observability](observability)
//! 13. [Deploying: TLS, proxies, graceful shutdown](deploying)
//! 14. [Migrating from ASP.NET Core SignalR](migrating)
//!
//! Why doc pages and not a book: they build with `cargo doc` (no other tool in CI), their
//! code blocks run with `cargo test --doc`, their links to the API are checked by
//! `cargo doc -D warnings`, and they ship with the crate on docs.rs.

// Each chapter is an empty module that carries one Markdown page. A chapter's page is
// included only when the features its code uses are on; otherwise the module says which.

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/01-first-hub.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod first_hub {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/02-typed-clients.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod typed_clients {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/03-streaming.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod streaming {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/04-groups-and-presence.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod groups_and_presence {}

#[cfg_attr(all(feature = "testing", feature = "jwt"), doc = include_str!("../docs/guide/05-identity.md"))]
#[cfg_attr(
    not(all(feature = "testing", feature = "jwt")),
    doc = "Needs the `testing` and `jwt` features: build the docs with `--all-features`."
)]
pub mod identity {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/06-filters-and-limits.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod filters_and_limits {}

#[cfg_attr(all(feature = "testing", feature = "redis"), doc = include_str!("../docs/guide/07-scaling-out.md"))]
#[cfg_attr(
    not(all(feature = "testing", feature = "redis")),
    doc = "Needs the `testing` and `redis` features: build the docs with `--all-features`."
)]
pub mod scaling_out {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/08-back-pressure.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod back_pressure {}

#[cfg_attr(all(feature = "testing", feature = "tls"), doc = include_str!("../docs/guide/09-rust-client.md"))]
#[cfg_attr(
    not(all(feature = "testing", feature = "tls")),
    doc = "Needs the `testing` and `tls` features: build the docs with `--all-features`."
)]
pub mod rust_client {}

#[cfg_attr(all(feature = "testing", feature = "typescript"), doc = include_str!("../docs/guide/10-typescript.md"))]
#[cfg_attr(
    not(all(feature = "testing", feature = "typescript")),
    doc = "Needs the `testing` and `typescript` features: build the docs with `--all-features`."
)]
pub mod typescript {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/11-testing.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod testing {}

#[cfg_attr(feature = "testing", doc = include_str!("../docs/guide/12-observability.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "Needs the `testing` feature: build the docs with `--all-features`."
)]
pub mod observability {}

#[cfg_attr(all(feature = "testing", feature = "tls"), doc = include_str!("../docs/guide/13-deploying.md"))]
#[cfg_attr(
    not(all(feature = "testing", feature = "tls")),
    doc = "Needs the `testing` and `tls` features: build the docs with `--all-features`."
)]
pub mod deploying {}

#[cfg_attr(all(feature = "testing", feature = "redis", feature = "jwt"), doc = include_str!("../docs/guide/14-migrating.md"))]
#[cfg_attr(
    not(all(feature = "testing", feature = "redis", feature = "jwt")),
    doc = "Needs the `testing`, `redis` and `jwt` features: build the docs with `--all-features`."
)]
pub mod migrating {}
