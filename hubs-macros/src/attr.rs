//! Helpers shared by the attribute parsers of `#[hub]` and `#[client]`.

use syn::Attribute;
use syn::meta::ParseNestedMeta;

/// Removes and returns the helper attributes named `name` (`#[hub(...)]`, `#[client(...)]`).
pub(crate) fn take(attrs: &mut Vec<Attribute>, name: &str) -> Vec<Attribute> {
    let (ours, rest): (Vec<_>, Vec<_>) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident(name));
    *attrs = rest;
    ours
}

/// The lines of the `///` comments among `attrs`.
pub(crate) fn doc_lines(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .collect()
}

/// Sets an option that may be given once; a repeat points at the second use.
pub(crate) fn once<T>(
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

/// A flag (`typescript`, `skip`): an option without a value; its span.
pub(crate) fn flag(meta: &ParseNestedMeta<'_>, usage: &str) -> syn::Result<proc_macro2::Span> {
    if !(meta.input.is_empty() || meta.input.peek(syn::Token![,])) {
        let name = meta
            .path
            .get_ident()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        return Err(meta.error(format!("`{name}` takes no value: write `{usage}`")));
    }
    Ok(meta.path.segments[0].ident.span())
}

/// `crate = "path"`: the path hubs is reached by, as a string.
pub(crate) fn krate(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let lit: syn::LitStr = meta.value()?.parse()?;
    lit.parse::<syn::Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "`crate` is the path hubs is reached by, as a string: `crate = \"my_crate::hubs\"`",
        )
    })
}

/// `unknown `{attribute}` option `x`; expected `a`, `b``, at the option.
pub(crate) fn unknown(meta: &ParseNestedMeta<'_>, attribute: &str, allowed: &[&str]) -> syn::Error {
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
        "unknown `{attribute}` option `{name}`; expected {allowed}"
    ))
}
