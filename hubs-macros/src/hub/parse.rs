//! Reads the `impl` block and every `#[hub(...)]` option, stripping the helper attributes.

use proc_macro2::{Span, TokenStream};
use syn::{FnArg, ImplItem, ItemImpl, LitStr, Path, Signature, Type, Visibility};

use super::access::{self, Authorize, LimitSpec};
use crate::attr;
use crate::diag::Errors;

pub(crate) struct Input {
    /// The block as it will be emitted again: helper attributes removed.
    pub(crate) item: ItemImpl,
    pub(crate) krate: Option<Path>,
    pub(crate) client: Option<Path>,
    /// `#[hub(authorize ...)]` on the block.
    pub(crate) authorize: Option<Authorize>,
    /// `#[hub(typescript)]`: the hub describes itself to `hubs::typescript`.
    pub(crate) typescript: Option<Span>,
    pub(crate) fns: Vec<FnInput>,
}

pub(crate) struct FnInput {
    pub(crate) sig: Signature,
    pub(crate) is_pub: bool,
    pub(crate) rename: Option<LitStr>,
    pub(crate) skip: Option<Span>,
    pub(crate) authorize: Option<Authorize>,
    pub(crate) limits: Vec<LimitSpec>,
    pub(crate) params: Vec<ParamInput>,
    /// The lines of its doc comment.
    pub(crate) docs: Vec<String>,
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
    let mut block_authorize = None;
    let mut typescript = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("authorize") {
                attr::once(
                    &mut block_authorize,
                    &meta,
                    "authorize",
                    access::parse_authorize,
                )
            } else if meta.path.is_ident("client") {
                attr::once(&mut client, &meta, "client", |m| m.value()?.parse::<Path>())
            } else if meta.path.is_ident("crate") {
                attr::once(&mut krate, &meta, "crate", |m| {
                    let lit: LitStr = m.value()?.parse()?;
                    lit.parse::<Path>()
                })
            } else if meta.path.is_ident("typescript") {
                attr::once(&mut typescript, &meta, "typescript", |m| {
                    Ok(m.path.segments[0].ident.span())
                })
            } else {
                Err(attr::unknown(
                    &meta,
                    "hub",
                    &["authorize", "client", "crate", "typescript"],
                ))
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
        let mut authorize = None;
        let mut limits = Vec::new();
        for attribute in attr::take(&mut function.attrs, "hub") {
            let result = attribute.parse_nested_meta(|meta| {
                if meta.path.is_ident("authorize") {
                    attr::once(&mut authorize, &meta, "authorize", access::parse_authorize)
                } else if meta.path.is_ident("limit") {
                    limits.push(access::parse_limit(&meta)?);
                    Ok(())
                } else if meta.path.is_ident("rename") {
                    attr::once(&mut rename, &meta, "rename", |m| {
                        m.value()?.parse::<LitStr>()
                    })
                } else if meta.path.is_ident("skip") {
                    attr::once(&mut skip, &meta, "skip", |m| {
                        Ok(m.path.segments[0].ident.span())
                    })
                } else {
                    Err(attr::unknown(
                        &meta,
                        "hub",
                        &["authorize", "limit", "rename", "skip"],
                    ))
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
            for attribute in attr::take(&mut typed.attrs, "hub") {
                let result = attribute.parse_nested_meta(|meta| {
                    if meta.path.is_ident("service") {
                        let span = meta.path.segments[0].ident.span();
                        attr::once(&mut service, &meta, "service", |m| {
                            let key = if m.input.peek(syn::Token![=]) {
                                Some(m.value()?.parse::<LitStr>()?)
                            } else {
                                None
                            };
                            Ok((span, key))
                        })
                    } else {
                        Err(attr::unknown(&meta, "hub", &["service"]))
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
            authorize,
            limits,
            params,
            docs: crate::attr::doc_lines(&function.attrs),
        });
    }
    Some(Input {
        item,
        krate,
        client,
        authorize: block_authorize,
        typescript,
        fns,
    })
}
