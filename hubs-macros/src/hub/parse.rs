//! Reads the `impl` block and every `#[hub(...)]` option, stripping the helper attributes.

use proc_macro2::{Span, TokenStream};
use syn::{
    Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, PatType, Path, Signature, Type,
    Visibility,
};

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
    let options = block_options(attr, errors);
    let fns = item
        .items
        .iter_mut()
        .filter_map(|impl_item| match impl_item {
            ImplItem::Fn(function) => Some(fn_input(function, errors)),
            _ => None,
        })
        .collect();
    Some(Input {
        item,
        krate: options.krate,
        client: options.client,
        authorize: options.authorize,
        typescript: options.typescript,
        fns,
    })
}

/// The options of `#[hub(...)]` on the block.
#[derive(Default)]
struct BlockOptions {
    krate: Option<Path>,
    client: Option<Path>,
    authorize: Option<Authorize>,
    typescript: Option<Span>,
}

fn block_options(attr: TokenStream, errors: &Errors) -> BlockOptions {
    let mut options = BlockOptions::default();
    if attr.is_empty() {
        return options;
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("authorize") {
            attr::once(
                &mut options.authorize,
                &meta,
                "authorize",
                access::parse_authorize,
            )
        } else if meta.path.is_ident("client") {
            attr::once(&mut options.client, &meta, "client", |m| {
                let value = m.value()?;
                if value.peek(LitStr) {
                    let lit: LitStr = value.parse()?;
                    return Err(syn::Error::new(
                        lit.span(),
                        "`client` names the `#[client]` trait as a path, without quotes: `client = ChatClient`",
                    ));
                }
                value.parse::<Path>()
            })
        } else if meta.path.is_ident("crate") {
            attr::once(&mut options.krate, &meta, "crate", attr::krate)
        } else if meta.path.is_ident("typescript") {
            attr::once(&mut options.typescript, &meta, "typescript", |m| {
                attr::flag(m, "#[hub(typescript)]")
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
    options
}

/// One function of the block, its `#[hub(...)]` attributes (and its parameters') stripped.
fn fn_input(function: &mut ImplItemFn, errors: &Errors) -> FnInput {
    let options = method_options(&mut function.attrs, errors);
    let params = function
        .sig
        .inputs
        .iter_mut()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(param_input(typed, errors)),
            FnArg::Receiver(_) => None,
        })
        .collect();
    FnInput {
        sig: function.sig.clone(),
        is_pub: !matches!(function.vis, Visibility::Inherited),
        rename: options.rename,
        skip: options.skip,
        authorize: options.authorize,
        limits: options.limits,
        params,
        docs: attr::doc_lines(&function.attrs),
    }
}

/// The options of `#[hub(...)]` on a function.
#[derive(Default)]
struct MethodOptions {
    rename: Option<LitStr>,
    skip: Option<Span>,
    authorize: Option<Authorize>,
    limits: Vec<LimitSpec>,
}

fn method_options(attrs: &mut Vec<Attribute>, errors: &Errors) -> MethodOptions {
    let mut options = MethodOptions::default();
    for attribute in attr::take(attrs, "hub") {
        let result = attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("authorize") {
                attr::once(
                    &mut options.authorize,
                    &meta,
                    "authorize",
                    access::parse_authorize,
                )
            } else if meta.path.is_ident("limit") {
                options.limits.push(access::parse_limit(&meta)?);
                Ok(())
            } else if meta.path.is_ident("rename") {
                attr::once(&mut options.rename, &meta, "rename", |m| {
                    m.value()?.parse::<LitStr>()
                })
            } else if meta.path.is_ident("skip") {
                attr::once(&mut options.skip, &meta, "skip", |m| {
                    attr::flag(m, "#[hub(skip)]")
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
    options
}

/// One typed parameter, its `#[hub(service)]` read and stripped.
fn param_input(typed: &mut PatType, errors: &Errors) -> ParamInput {
    let mut service = None;
    for attribute in attr::take(&mut typed.attrs, "hub") {
        let result = attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("service") {
                let span = meta.path.segments[0].ident.span();
                attr::once(&mut service, &meta, "service", |m| {
                    let key = if m.input.peek(syn::Token![=]) {
                        // A key that is not a string is reported, and the parameter stays
                        // a service (rather than becoming a payload with errors of its own).
                        match m.value()?.parse::<syn::Expr>()? {
                            syn::Expr::Lit(syn::ExprLit {
                                lit: syn::Lit::Str(key),
                                ..
                            }) => Some(key),
                            other => {
                                errors.error_at(
                                    other,
                                    "`service` takes its key as a string: `#[hub(service = \"primary\")]`, or no key",
                                );
                                None
                            }
                        }
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
    ParamInput {
        name: match &*typed.pat {
            syn::Pat::Ident(pat) => Some(pat.ident.clone()),
            _ => None,
        },
        ty: typed.ty.clone(),
        service,
    }
}
