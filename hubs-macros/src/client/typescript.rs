//! `#[client(typescript)]`: the trait describes what the server calls on clients to
//! `hubs::typescript`. Only with the facade's `typescript` feature.

use proc_macro2::TokenStream;
use quote::quote;

use super::expand::owned;
use super::model::Model;

pub(crate) fn expand(model: &Model) -> TokenStream {
    if !model.typescript {
        return TokenStream::new();
    }
    let krate = &model.krate;
    let p = quote!(#krate::__private);
    let proxy = &model.proxy;
    let name = model.trait_ident.to_string();
    let methods = model.methods.iter().map(|method| {
        let wire = &method.wire;
        let docs = crate::attr::doc_lines(&method.docs);
        let docs = docs.iter().map(|line| quote!(.doc(#line)));
        let params = method.params.iter().map(|(ident, ty)| {
            // What travels is the owned type (`&str` is a `String`).
            let (ty, _) = owned(ty);
            let name = ident.to_string();
            quote!(.param::<#ty>(#name))
        });
        let output = method.result.as_ref().map(|ok| quote!(.returns::<#ok>()));
        quote! {
            let _ = client.method(#wire) #(#docs)* #(#params)* #output;
        }
    });
    quote! {
        #p::typescript_items! {
            #[automatically_derived]
            impl #p::typescript::DescribeClient for #proxy {
                const NAME: &'static str = #name;
                fn describe(client: &mut #p::typescript::Describer<'_>) {
                    #(#methods)*
                }
            }
        }
    }
}
