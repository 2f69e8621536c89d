//! `#[hub(typescript)]`: the hub describes its methods to `hubs::typescript`, which
//! writes them as TypeScript. Only with the facade's `typescript` feature.

use proc_macro2::TokenStream;
use quote::quote;

use super::model::{Model, Param, Return, stream_item};

pub(crate) fn expand(model: &Model) -> TokenStream {
    if !model.typescript {
        return TokenStream::new();
    }
    let krate = &model.krate;
    let p = quote!(#krate::__private);
    let self_ty = &model.self_ty;
    let name = super::model::last_segment(self_ty)
        .map_or_else(|| "Hub".to_owned(), |s| s.ident.to_string());
    let client = model.client_family(&p);
    let methods = model.methods.iter().map(|method| {
        let wire = &method.wire;
        let docs = method.docs.iter().map(|line| quote!(.doc(#line)));
        let params = method
            .params
            .iter()
            .enumerate()
            .filter_map(|(i, param)| match param {
                Param::Payload { ty, name } => {
                    let name = name
                        .as_ref()
                        .map_or_else(|| format!("arg{i}"), ToString::to_string);
                    Some(quote!(.param::<#ty>(#name)))
                }
                Param::Upload {
                    item: Some(item),
                    name,
                } => {
                    let name = name
                        .as_ref()
                        .map_or_else(|| format!("arg{i}"), ToString::to_string);
                    Some(quote!(.upload::<#item>(#name)))
                }
                _ => None,
            });
        let output = match &method.ret {
            Return::Unit => quote!(),
            Return::Value(ty) | Return::Result(ty) => quote!(.returns::<#ty>()),
            Return::Stream { stream, .. } => {
                let item = stream_item(stream);
                quote!(.streams::<#item>())
            }
        };
        quote! {
            let _ = hub.method(#wire) #(#docs)* #(#params)* #output;
        }
    });
    quote! {
        #p::typescript_items! {
            #[automatically_derived]
            impl #p::typescript::DescribeHub for #self_ty {
                type Client = #client;
                const NAME: &'static str = #name;
                fn describe(hub: &mut #p::typescript::Describer<'_>) {
                    #(#methods)*
                }
            }
        }
    }
}
