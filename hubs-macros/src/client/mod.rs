//! `#[client]`: parse → validate → model → expand.

mod expand;
mod model;
mod parse;
mod typescript;
mod validate;

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::diag::Errors;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let errors = Errors::new();
    let Some(input) = parse::parse(attr, item.clone(), &errors) else {
        let error = errors.finish().err().map(|e| e.to_compile_error());
        return quote::quote! { #item #error };
    };
    validate::validate(&input, &errors);
    match errors.finish() {
        Ok(()) => {
            let model = model::lower(&input);
            let mut out = expand::expand(&model, &input.item);
            out.extend(typescript::expand(&model));
            out
        }
        Err(error) => {
            // Still emit the trait and a proxy with no methods, so `#[hub(client = Trait)]`
            // does not add "cannot find `TraitProxy`" to the real mistake.
            let mut out = expand::sized_methods(&input.item).to_token_stream();
            out.extend(expand::fallback(&input));
            out.extend(error.to_compile_error());
            out
        }
    }
}
