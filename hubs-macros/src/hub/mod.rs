//! `#[hub]`: parse → validate → model → expand.

mod access;
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
        // Not an impl block: give the item back untouched, with the errors.
        let error = errors.finish().err().map(|e| e.to_compile_error());
        return quote::quote! { #item #error };
    };
    validate::validate(&input, &errors);
    match errors.finish() {
        Ok(()) => expand::expand_with_item(&model::lower(&input), &input.item),
        Err(error) => {
            // Still emit the user's item (helper attributes removed), so the rest of the
            // crate type-checks and the IDE keeps working.
            let mut out = input.item.to_token_stream();
            out.extend(expand::fallback(&input));
            out.extend(error.to_compile_error());
            out
        }
    }
}
