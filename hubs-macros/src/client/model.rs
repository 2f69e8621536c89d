//! The lowered description of a client trait.

use syn::{Attribute, FnArg, Ident, Pat, Path, TraitItem, Type, Visibility};

use super::parse::Input;
use crate::naming::pascal_case;

pub(crate) struct Model {
    pub(crate) vis: Visibility,
    pub(crate) trait_ident: Ident,
    pub(crate) proxy: Ident,
    pub(crate) ask: Ident,
    pub(crate) krate: Path,
    pub(crate) methods: Vec<ClientMethodDef>,
    /// Whether the trait describes itself to `hubs::typescript`.
    pub(crate) typescript: bool,
}

/// A method of the client trait: a target the server calls.
pub(crate) struct ClientMethodDef {
    pub(crate) ident: Ident,
    pub(crate) docs: Vec<Attribute>,
    pub(crate) wire: String,
    pub(crate) params: Vec<(Ident, Type)>,
    /// `Some(T)` for a client result `Result<T, HubError>`; `None` for a call.
    pub(crate) result: Option<Type>,
}

/// `Result<T, HubError>` → `T`.
pub(crate) fn client_result(output: &syn::ReturnType) -> Option<Result<Type, ()>> {
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    if matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) {
        return None;
    }
    let Type::Path(path) = &**ty else {
        return Some(Err(()));
    };
    let segment = path.path.segments.last().ok_or(()).ok();
    let Some(segment) = segment.filter(|s| s.ident == "Result") else {
        return Some(Err(()));
    };
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return Some(Err(()));
    };
    let mut args = args.args.iter();
    match (args.next(), args.next(), args.next()) {
        (
            Some(syn::GenericArgument::Type(ok)),
            Some(syn::GenericArgument::Type(Type::Path(err))),
            None,
        ) if err
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "HubError") =>
        {
            Some(Ok(ok.clone()))
        }
        _ => Some(Err(())),
    }
}

pub(crate) fn lower(input: &Input) -> Model {
    let item = &input.item;
    let trait_ident = item.ident.clone();
    let mut methods = Vec::new();
    for (trait_item, rename) in item.items.iter().zip(&input.renames) {
        let TraitItem::Fn(function) = trait_item else {
            continue;
        };
        let sig = &function.sig;
        let params = sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(typed) => Some(typed),
                FnArg::Receiver(_) => None,
            })
            .enumerate()
            .map(|(i, typed)| {
                let ident = match &*typed.pat {
                    Pat::Ident(pat) => pat.ident.clone(),
                    _ => quote::format_ident!("arg{}", i),
                };
                (ident, (*typed.ty).clone())
            })
            .collect();
        methods.push(ClientMethodDef {
            ident: sig.ident.clone(),
            docs: function
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .cloned()
                .collect(),
            wire: rename
                .as_ref()
                .map_or_else(|| pascal_case(&sig.ident.to_string()), syn::LitStr::value),
            params,
            result: client_result(&sig.output).and_then(Result::ok),
        });
    }
    Model {
        vis: item.vis.clone(),
        proxy: quote::format_ident!("{}Proxy", trait_ident),
        ask: quote::format_ident!("{}Ask", trait_ident),
        trait_ident,
        krate: input
            .krate
            .clone()
            .unwrap_or_else(|| syn::parse_quote!(::hubs)),
        methods,
        typescript: input.typescript,
    }
}
