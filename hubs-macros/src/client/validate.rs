//! Every misuse `#[client]` can see, each reported at the offending token.

use std::collections::HashMap;

use syn::{FnArg, TraitItem, Type};

use super::model::client_result;
use super::parse::Input;
use crate::diag::Errors;
use crate::naming::pascal_case;

pub(crate) fn validate(input: &Input, errors: &Errors) {
    let item = &input.item;
    if !item.generics.params.is_empty() {
        errors.error_at(&item.generics, "client traits cannot be generic");
    }
    let mut targets: HashMap<String, String> = HashMap::new();
    for (trait_item, rename) in item.items.iter().zip(&input.renames) {
        let TraitItem::Fn(function) = trait_item else {
            errors.error_at(
                trait_item,
                "client traits hold only methods: one per client method the server calls",
            );
            continue;
        };
        let sig = &function.sig;
        if sig.asyncness.is_none() {
            errors.error_at(
                sig.fn_token,
                "client methods are `async fn`: calling a client is asynchronous",
            );
        }
        if !sig.generics.params.is_empty() {
            errors.error_at(&sig.generics, "client methods cannot be generic: the server calls them with concrete argument types");
        }
        match sig.inputs.first() {
            Some(FnArg::Receiver(receiver))
                if receiver.reference.is_some() && receiver.mutability.is_none() => {}
            Some(FnArg::Receiver(receiver)) => {
                errors.error_at(receiver, "client methods take `&self`")
            }
            _ => errors.error_at(&sig.ident, "client methods take `&self`"),
        }
        for arg in &sig.inputs {
            if let FnArg::Typed(typed) = arg
                && matches!(&*typed.ty, Type::ImplTrait(_))
            {
                errors.error_at(
                    &typed.ty,
                    "`impl Trait` parameters are not supported in client methods",
                );
            }
        }
        if let Some(Err(())) = client_result(&sig.output) {
            errors.error_at(
                &sig.output,
                "client methods return nothing (a call) or `Result<T, HubError>` (a client result)",
            );
        }
        if let Some(rename) = rename
            && rename.value().trim().is_empty()
        {
            errors.error_at(
                rename,
                "an empty `rename`: give the target the server calls the method by",
            );
        }
        let name = sig.ident.to_string();
        let wire = rename
            .as_ref()
            .map_or_else(|| pascal_case(&name), syn::LitStr::value);
        match targets.get(&wire.to_lowercase()) {
            Some(first) => {
                let message = format!(
                    "duplicate target `{wire}` (also used by `{first}`); clients match targets without regard to case, so rename one with `#[client(rename = \"…\")]`"
                );
                match rename {
                    Some(rename) => errors.error_at(rename, message),
                    None => errors.error_at(&sig.ident, message),
                }
            }
            None => {
                targets.insert(wire.to_lowercase(), name);
            }
        }
    }
}
