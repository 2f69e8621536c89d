//! Reads the trait and every `#[client(...)]` option, stripping the helper attributes.

use proc_macro2::TokenStream;
use syn::{ItemTrait, LitStr, Path, TraitItem};

use crate::attr;
use crate::diag::Errors;

pub(crate) struct Input {
    /// The trait as it will be emitted again: helper attributes removed.
    pub(crate) item: ItemTrait,
    pub(crate) krate: Option<Path>,
    /// `#[client(typescript)]`: the trait describes itself to `hubs::typescript`.
    pub(crate) typescript: bool,
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
    let mut typescript = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                attr::once(&mut krate, &meta, "crate", attr::krate)
            } else if meta.path.is_ident("typescript") {
                attr::once(&mut typescript, &meta, "typescript", |m| {
                    attr::flag(m, "#[client(typescript)]")
                })
            } else {
                Err(attr::unknown(&meta, "client", &["crate", "typescript"]))
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
            for attribute in attr::take(&mut function.attrs, "client") {
                let result = attribute.parse_nested_meta(|meta| {
                    if meta.path.is_ident("rename") {
                        attr::once(&mut rename, &meta, "rename", |m| {
                            m.value()?.parse::<LitStr>()
                        })
                    } else {
                        Err(attr::unknown(&meta, "client", &["rename"]))
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
        typescript: typescript.is_some(),
        renames,
    })
}
