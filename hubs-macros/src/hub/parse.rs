//! Reads the `impl` block and every `#[hub(...)]` option, stripping the helper attributes.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, FnArg, ImplItem, ItemImpl, LitStr, Path, Signature, Type, Visibility};

use crate::diag::Errors;

pub(crate) struct Input {
    /// The block as it will be emitted again: helper attributes removed.
    pub(crate) item: ItemImpl,
    pub(crate) krate: Option<Path>,
    pub(crate) client: Option<Path>,
    pub(crate) fns: Vec<FnInput>,
}

pub(crate) struct FnInput {
    pub(crate) sig: Signature,
    pub(crate) is_pub: bool,
    pub(crate) rename: Option<LitStr>,
    pub(crate) skip: Option<Span>,
    pub(crate) params: Vec<ParamInput>,
}

pub(crate) struct ParamInput {
    /// The parameter's name, when its pattern is a plain identifier.
    pub(crate) name: Option<syn::Ident>,
    pub(crate) ty: Box<Type>,
    /// `#[hub(service)]` or `#[hub(service = "key")]`.
    pub(crate) service: Option<(Span, Option<LitStr>)>,
}

pub(crate) fn parse(attr: TokenStream, item: TokenStream, errors: &Errors) -> Option<Input> {
    let mut item: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.error_at(
                item,
                "`#[hub]` goes on an inherent `impl` block: `#[hub] impl MyHub { … }`",
            );
            return None;
        }
    };

    let mut krate = None;
    let mut client = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("client") {
                once(&mut client, &meta, "client", |m| m.value()?.parse::<Path>())
            } else if meta.path.is_ident("crate") {
                once(&mut krate, &meta, "crate", |m| {
                    let lit: LitStr = m.value()?.parse()?;
                    lit.parse::<Path>()
                })
            } else {
                Err(unknown(&meta, &["client", "crate"]))
            }
        });
        if let Err(error) = syn::parse::Parser::parse2(parser, attr) {
            errors.push(error);
        }
    }

    let mut fns = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let mut rename = None;
        let mut skip = None;
        for attr in take_hub_attrs(&mut function.attrs) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    once(&mut rename, &meta, "rename", |m| {
                        m.value()?.parse::<LitStr>()
                    })
                } else if meta.path.is_ident("skip") {
                    once(&mut skip, &meta, "skip", |m| {
                        Ok(m.path.segments[0].ident.span())
                    })
                } else {
                    Err(unknown(&meta, &["rename", "skip"]))
                }
            });
            if let Err(error) = result {
                errors.push(error);
            }
        }
        let mut params = Vec::new();
        for input in &mut function.sig.inputs {
            let FnArg::Typed(typed) = input else { continue };
            let mut service = None;
            for attr in take_hub_attrs(&mut typed.attrs) {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("service") {
                        let span = meta.path.segments[0].ident.span();
                        once(&mut service, &meta, "service", |m| {
                            let key = if m.input.peek(syn::Token![=]) {
                                Some(m.value()?.parse::<LitStr>()?)
                            } else {
                                None
                            };
                            Ok((span, key))
                        })
                    } else {
                        Err(unknown(&meta, &["service"]))
                    }
                });
                if let Err(error) = result {
                    errors.push(error);
                }
            }
            params.push(ParamInput {
                name: match &*typed.pat {
                    syn::Pat::Ident(pat) => Some(pat.ident.clone()),
                    _ => None,
                },
                ty: typed.ty.clone(),
                service,
            });
        }
        fns.push(FnInput {
            sig: function.sig.clone(),
            is_pub: !matches!(function.vis, Visibility::Inherited),
            rename,
            skip,
            params,
        });
    }
    Some(Input {
        item,
        krate,
        client,
        fns,
    })
}

/// Removes and returns the `#[hub(...)]` attributes.
fn take_hub_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (hub, rest): (Vec<_>, Vec<_>) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("hub"));
    *attrs = rest;
    hub
}

/// Sets an option that may be given once; a repeat points at the second use.
fn once<T>(
    slot: &mut Option<T>,
    meta: &ParseNestedMeta<'_>,
    name: &str,
    read: impl FnOnce(&ParseNestedMeta<'_>) -> syn::Result<T>,
) -> syn::Result<()> {
    let value = read(meta)?;
    if slot.is_some() {
        return Err(meta.error(format!("`{name}` is given more than once")));
    }
    *slot = Some(value);
    Ok(())
}

fn unknown(meta: &ParseNestedMeta<'_>, allowed: &[&str]) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    let allowed = allowed
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    meta.error(format!("unknown `hub` option `{name}`; expected {allowed}"))
}
