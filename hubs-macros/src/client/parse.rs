//! Reads the trait and every `#[client(...)]` option, stripping the helper attributes.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, ItemTrait, LitStr, Path, TraitItem};

use crate::diag::Errors;

pub(crate) struct Input {
    /// The trait as it will be emitted again: helper attributes removed.
    pub(crate) item: ItemTrait,
    pub(crate) krate: Option<Path>,
    /// `rename` of each method, by position among the trait's items.
    pub(crate) renames: Vec<Option<LitStr>>,
}

pub(crate) fn parse(attr: TokenStream, item: TokenStream, errors: &Errors) -> Option<Input> {
    let mut item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.error_at(
                item,
                "`#[client]` goes on a trait: `#[client] pub trait ChatClient { … }`",
            );
            return None;
        }
    };
    let mut krate = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                once(&mut krate, &meta, "crate", |m| {
                    m.value()?.parse::<LitStr>()?.parse::<Path>()
                })
            } else {
                Err(unknown(&meta, &["crate"]))
            }
        });
        if let Err(error) = syn::parse::Parser::parse2(parser, attr) {
            errors.push(error);
        }
    }
    let mut renames = Vec::new();
    for trait_item in &mut item.items {
        let mut rename = None;
        if let TraitItem::Fn(function) = trait_item {
            for attr in take_client_attrs(&mut function.attrs) {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("rename") {
                        once(&mut rename, &meta, "rename", |m| {
                            m.value()?.parse::<LitStr>()
                        })
                    } else {
                        Err(unknown(&meta, &["rename"]))
                    }
                });
                if let Err(error) = result {
                    errors.push(error);
                }
            }
        }
        renames.push(rename);
    }
    Some(Input {
        item,
        krate,
        renames,
    })
}

fn take_client_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (ours, rest): (Vec<_>, Vec<_>) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("client"));
    *attrs = rest;
    ours
}

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
    meta.error(format!(
        "unknown `client` option `{name}`; expected {allowed}"
    ))
}
