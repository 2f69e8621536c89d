//! Generates the `Hub` implementation from the model: a pure function of it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Hook, Method, Model, Param, Return};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let krate = &model.krate;
    let p = quote!(#krate::__private);
    let self_ty = &model.self_ty;

    let descriptors = model.methods.iter().map(|m| {
        let wire = &m.wire;
        let params = m
            .params
            .iter()
            .filter(|p| matches!(p, Param::Payload { .. }))
            .count();
        let uploads = m.params.iter().filter(|p| matches!(p, Param::Upload { .. })).count();
        let streaming = matches!(m.ret, Return::Stream { .. });
        quote!(#p::Method { name: #wire, params: #params, streaming: #streaming, uploads: #uploads })
    });
    let services = model
        .methods
        .iter()
        .flat_map(|m| &m.params)
        .filter_map(|param| match param {
            Param::Service { ty, key, .. } => {
                let key = option_str(key.as_deref());
                Some(quote!(#p::ServiceKey::of::<#ty>(#key)))
            }
            _ => None,
        });
    let arms = model
        .methods
        .iter()
        .enumerate()
        .map(|(i, m)| dispatch_arm(&p, i, m));
    let on_connected = model
        .on_connected
        .as_ref()
        .map(|hook| on_connected(&p, hook));
    let on_disconnected = model
        .on_disconnected
        .as_ref()
        .map(|hook| on_disconnected(&p, hook));
    let client = match &model.client {
        Some(proxy) => quote!(#proxy),
        None => quote!(#p::Untyped),
    };

    quote! {
        #[allow(clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl #p::Hub for #self_ty {
                type Client = #client;

                fn methods() -> &'static [#p::Method] {
                    const METHODS: &[#p::Method] = &[#(#descriptors),*];
                    METHODS
                }

                fn services() -> ::std::vec::Vec<#p::ServiceKey> {
                    ::std::vec![#(#services),*]
                }

                fn invoke(
                    self: #p::Arc<Self>,
                    __hubs_method: usize,
                    __hubs_call: #p::Call<Self>,
                ) -> #p::BoxFuture<::core::result::Result<#p::Reply, #p::InvokeError>> {
                    match __hubs_method {
                        #(#arms)*
                        _ => ::std::boxed::Box::pin(async {
                            ::core::result::Result::Err(#p::InvokeError::hub("Method does not exist."))
                        }),
                    }
                }

                #on_connected
                #on_disconnected
            }
        };
    }
}

pub(crate) fn expand_with_item(model: &Model, item: &syn::ItemImpl) -> TokenStream {
    let generated = expand(model);
    quote!(#item #generated)
}

fn option_str(value: Option<&str>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn dispatch_arm(p: &TokenStream, index: usize, method: &Method) -> TokenStream {
    let ident = &method.ident;
    let mut bindings = Vec::new();
    let mut args = Vec::new();
    let mut payload_index = 0usize;
    let mut upload_index = 0usize;
    for (i, param) in method.params.iter().enumerate() {
        let var = format_ident!("__hubs_arg{}", i);
        match param {
            Param::Context { by_ref: true } => args.push(quote!(__hubs_call.context())),
            Param::Context { by_ref: false } => {
                args.push(quote!(::core::clone::Clone::clone(__hubs_call.context())))
            }
            Param::Service { ty, key, by_ref } => {
                let key = option_str(key.as_deref());
                bindings.push(quote_spanned! {ty.span()=>
                    let #var: #p::Arc<#ty> = __hubs_call.service::<#ty>(#key)?;
                });
                args.push(if *by_ref {
                    quote!(&*#var)
                } else {
                    quote!(#var)
                });
            }
            Param::Upload { item } => {
                let at = upload_index;
                upload_index += 1;
                if let Some(item) = item {
                    bindings.push(quote_spanned! {item.span()=>
                        #p::assert_result::<#item>();
                    });
                }
                bindings.push(quote! {
                    let #var = __hubs_call.upload(#at)?;
                });
                args.push(quote!(#var));
            }
            Param::Cancel => args.push(quote!(__hubs_call.cancellation())),
            Param::Payload { ty } => {
                let at = payload_index;
                payload_index += 1;
                bindings.push(quote_spanned! {ty.span()=>
                    let #var: #ty = __hubs_call.argument::<#ty>(#at)?;
                });
                args.push(quote!(#var));
            }
        }
    }
    let call = if method.is_async {
        quote!(Self::#ident(&*self, #(#args),*).await)
    } else {
        quote!(Self::#ident(&*self, #(#args),*))
    };
    let reply = match &method.ret {
        Return::Unit => quote! {
            let () = __hubs_out;
            ::core::result::Result::Ok(#p::Reply::Unit)
        },
        Return::Value(ty) => quote_spanned! {ty.span()=>
            __hubs_call.reply::<#ty>(&__hubs_out)
        },
        Return::Stream { stream, in_result } => {
            let wrap = if stream.receiver {
                quote!(#p::receiver_stream(__hubs_stream))
            } else {
                quote!(__hubs_stream)
            };
            let item = &stream.item;
            let check = (!stream.fallible).then(|| {
                quote_spanned! {item.span()=> #p::assert_argument::<#item>(); }
            });
            let to_reply = if stream.fallible {
                quote_spanned!(item.span()=> #p::reply_fallible_stream(__hubs_call.protocol(), #wrap))
            } else {
                quote_spanned!(item.span()=> #p::reply_stream(__hubs_call.protocol(), #wrap))
            };
            if *in_result {
                quote! {
                    #check
                    match __hubs_out {
                        ::core::result::Result::Ok(__hubs_stream) => {
                            ::core::result::Result::Ok(#p::Reply::Stream(#to_reply))
                        }
                        ::core::result::Result::Err(__hubs_error) => {
                            ::core::result::Result::Err(#p::InvokeError::failed(__hubs_error))
                        }
                    }
                }
            } else {
                quote! {
                    #check
                    let __hubs_stream = __hubs_out;
                    ::core::result::Result::Ok(#p::Reply::Stream(#to_reply))
                }
            }
        }
        Return::Result(ok) => quote_spanned! {ok.span()=>
            match __hubs_out {
                ::core::result::Result::Ok(__hubs_value) => __hubs_call.reply::<#ok>(&__hubs_value),
                ::core::result::Result::Err(__hubs_error) => {
                    ::core::result::Result::Err(#p::InvokeError::failed(__hubs_error))
                }
            }
        },
    };
    quote! {
        #index => ::std::boxed::Box::pin(async move {
            #(#bindings)*
            let __hubs_out = #call;
            #reply
        }),
    }
}

fn hook_context(p: &TokenStream, hook: &Hook) -> Option<TokenStream> {
    let _ = p;
    hook.context.map(|by_ref| {
        if by_ref {
            quote!(&__hubs_cx)
        } else {
            quote!(::core::clone::Clone::clone(&__hubs_cx))
        }
    })
}

fn on_connected(p: &TokenStream, hook: &Hook) -> TokenStream {
    let ident = &hook.ident;
    let cx = hook_context(p, hook);
    let call = if hook.is_async {
        quote!(Self::#ident(&*self, #cx).await)
    } else {
        quote!(Self::#ident(&*self, #cx))
    };
    let body = if hook.fallible {
        quote!(#call.map_err(::core::convert::Into::<#p::HubError>::into))
    } else {
        quote!({ #call; ::core::result::Result::Ok(()) })
    };
    quote! {
        fn on_connected(
            self: #p::Arc<Self>,
            __hubs_cx: #p::Context<Self>,
        ) -> #p::BoxFuture<::core::result::Result<(), #p::HubError>> {
            ::std::boxed::Box::pin(async move { #body })
        }
    }
}

fn on_disconnected(p: &TokenStream, hook: &Hook) -> TokenStream {
    let ident = &hook.ident;
    let cx = hook_context(p, hook);
    let error = hook.takes_error.then(|| quote!(__hubs_error));
    let args = cx.into_iter().chain(error);
    let call = if hook.is_async {
        quote!(Self::#ident(&*self, #(#args),*).await)
    } else {
        quote!(Self::#ident(&*self, #(#args),*))
    };
    quote! {
        fn on_disconnected(
            self: #p::Arc<Self>,
            __hubs_cx: #p::Context<Self>,
            __hubs_error: ::core::option::Option<#p::HubError>,
        ) -> #p::BoxFuture<()> {
            let _ = &__hubs_error;
            ::std::boxed::Box::pin(async move { #call; })
        }
    }
}

/// After an error: an empty `Hub` implementation, so that code naming the hub (such as
/// `Context<Self>` in its own signatures) does not add errors of its own.
pub(crate) fn fallback(input: &super::parse::Input) -> TokenStream {
    let item = &input.item;
    if item.trait_.is_some() || !item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = input
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::hubs));
    let p = quote!(#krate::__private);
    let self_ty = &item.self_ty;
    quote! {
        const _: () = {
            impl #p::Hub for #self_ty {
                type Client = #p::Untyped;
                fn methods() -> &'static [#p::Method] {
                    &[]
                }

                fn invoke(
                    self: #p::Arc<Self>,
                    _: usize,
                    _: #p::Call<Self>,
                ) -> #p::BoxFuture<::core::result::Result<#p::Reply, #p::InvokeError>> {
                    ::std::boxed::Box::pin(async {
                        ::core::result::Result::Err(#p::InvokeError::hub("Method does not exist."))
                    })
                }
            }
        };
    }
}
