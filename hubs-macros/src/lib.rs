//! The procedural macros of hubs: `#[hub]` and `#[client]`. Use them through the
//! `hubs` facade, whose documentation describes them in full.

mod attr;
mod client;
mod diag;
mod hub;
mod naming;

use proc_macro::TokenStream;

/// Turns the methods of an inherent `impl` block into a hub clients call by name.
///
/// See the `hubs` crate for the full description.
#[proc_macro_attribute]
pub fn hub(attr: TokenStream, item: TokenStream) -> TokenStream {
    hub::expand(attr.into(), item.into()).into()
}

/// Turns a trait into typed proxies a hub calls its clients through.
///
/// See the `hubs` crate for the full description.
#[proc_macro_attribute]
pub fn client(attr: TokenStream, item: TokenStream) -> TokenStream {
    client::expand(attr.into(), item.into()).into()
}
