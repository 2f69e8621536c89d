//! Generates the `Hub` implementation from the model: a pure function of it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::access;
use super::model::{Hook, HubMethodDef, Model, Param, Return, StreamShape, stream_item};

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
        let uploads = m
            .params
            .iter()
            .filter(|p| matches!(p, Param::Upload { .. }))
            .count();
        let streaming = matches!(m.ret, Return::Stream { .. });
        // Answered with one Completion, nothing streamed either way: it may start on the
        // read loop (a plain `fn`, or an `async fn` until it first waits).
        let immediate = !streaming && uploads == 0;
        let authorize = match &m.authorize {
            Some(authorize) => {
                let requirement = access::requirement(&p, authorize);
                quote!(::core::option::Option::Some(#requirement))
            }
            None => quote!(::core::option::Option::None),
        };
        let limits = m.limits.iter().map(|spec| access::limit(&p, spec));
        quote!(#p::HubMethod {
            name: #wire,
            params: #params,
            streaming: #streaming,
            uploads: #uploads,
            authorize: #authorize,
            limits: &[#(#limits),*],
            immediate: #immediate,
        })
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
    let on_authentication_refreshed = model
        .on_authentication_refreshed
        .as_ref()
        .map(|hook| on_authentication_refreshed(&p, hook));
    let on_disconnected = model
        .on_disconnected
        .as_ref()
        .map(|hook| on_disconnected(&p, hook));
    let client = model.client_family(&p);
    let private_methods = private_methods(model);
    let authorization = model.authorize.as_ref().map(|authorize| {
        let requirement = access::requirement(&p, authorize);
        quote! {
            fn authorization() -> ::core::option::Option<#p::Requirement> {
                ::core::option::Option::Some(#requirement)
            }
        }
    });

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::Hub for #self_ty {
                type Client = #client;

                fn methods() -> &'static [#p::HubMethod] {
                    const METHODS: &[#p::HubMethod] = &[#(#descriptors),*];
                    METHODS
                }

                #private_methods

                fn services() -> ::std::vec::Vec<#p::ServiceKey> {
                    ::std::vec![#(#services),*]
                }

                #authorization

                fn invoke(
                    self: #p::Arc<Self>,
                    __hubs_method: usize,
                    __hubs_call: #p::Call<Self>,
                ) -> #p::BoxFuture<::core::result::Result<#p::Reply, #p::DispatchError>> {
                    match __hubs_method {
                        #(#arms)*
                        _ => ::std::boxed::Box::pin(async {
                            ::core::result::Result::Err(#p::DispatchError::hub("Method does not exist."))
                        }),
                    }
                }

                #on_connected
                #on_disconnected
                #on_authentication_refreshed
            }
        };
    }
}

/// `Hub::private_methods`, when the block has private functions.
fn private_methods(model: &Model) -> Option<TokenStream> {
    if model.private.is_empty() {
        return None;
    }
    let pairs = model
        .private
        .iter()
        .map(|(wire, rust)| quote!((#wire, #rust)));
    Some(quote! {
        fn private_methods() -> &'static [(&'static str, &'static str)] {
            &[#(#pairs),*]
        }
    })
}

pub(crate) fn expand_with_item(model: &Model, item: &syn::ItemImpl) -> TokenStream {
    let generated = expand(model);
    let proxy = proxy(model);
    let typescript = super::typescript::expand(model);
    quote!(#item #generated #proxy #typescript)
}

/// `{Hub}Connection`: typed calls to the hub over a client connection. Each method's bounds
/// sit on the connection type, so the proxy compiles whatever the hub's types are, and a
/// method whose types cannot travel fails where it is called.
fn proxy(model: &Model) -> TokenStream {
    let Some(proxy) = &model.proxy else {
        return TokenStream::new();
    };
    let krate = &model.krate;
    let p = quote!(#krate::__private);
    let doc = format!(
        "Typed calls to the `{}` hub over a [`HubConnection`]({}::connection::HubConnection), generated by `#[hub]`: one method per hub method, taking its payload parameters (and an `Upload` per upload stream).",
        quote::ToTokens::to_token_stream(&model.self_ty),
        quote::ToTokens::to_token_stream(krate),
    );
    let methods = model.methods.iter().map(|method| {
        let ident = &method.ident;
        let wire = &method.wire;
        let mut params = Vec::new();
        let mut names = Vec::new();
        let mut types = Vec::new();
        let mut uploads = Vec::new();
        for (i, param) in method.params.iter().enumerate() {
            match param {
                Param::Payload { ty, name } => {
                    let name = name.clone().unwrap_or_else(|| format_ident!("arg{}", i));
                    params.push(quote!(#name: #ty));
                    names.push(name);
                    types.push(ty.clone());
                }
                Param::Upload { .. } => {
                    let name = format_ident!("upload{}", uploads.len());
                    params.push(quote!(#name: #p::Upload));
                    uploads.push(name);
                }
                _ => {}
            }
        }
        let args_ty = quote!((#(#types,)*));
        let args = quote!((#(#names,)*));
        let uploads = quote!(::std::vec![#(#uploads),*]);
        let doc = format!("Calls `{wire}`.");
        match &method.ret {
            Return::Stream { stream, .. } => {
                let item = received(stream_item(stream));
                quote! {
                    #[doc = #doc]
                    pub async fn #ident(&self, #(#params),*) -> ::core::result::Result<#p::ClientStream<#item>, #p::ClientInvokeError>
                    where
                        C: #p::ProxyStream<#args_ty, #item>,
                    {
                        self.connection.proxy_stream(#wire, #args, #uploads).await
                    }
                }
            }
            ret => {
                let out = match ret {
                    Return::Unit => quote!(()),
                    Return::Value(ty) | Return::Result(ty) => received(ty),
                    Return::Stream { .. } => quote!(()),
                };
                quote! {
                    #[doc = #doc]
                    pub async fn #ident(&self, #(#params),*) -> ::core::result::Result<#out, #p::ClientInvokeError>
                    where
                        C: #p::ProxyInvoke<#args_ty, #out>,
                    {
                        self.connection.proxy_invoke(#wire, #args, #uploads).await
                    }
                }
            }
        }
    });
    // Only with the facade's `client` feature: server-only users get no client.
    quote! {
        #p::client_items! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #proxy<C = #p::HubConnection> {
            connection: C,
        }

        impl #proxy {
            /// Typed calls over `connection`.
            pub fn new(connection: &#p::HubConnection) -> Self {
                Self { connection: ::core::clone::Clone::clone(connection) }
            }
        }

        // A proxy method takes the hub method's parameters, however many it has.
        #[allow(clippy::too_many_arguments)]
        impl<C> #proxy<C> {
            #(#methods)*
        }
        }
    }
}

/// What a client receives for a value the hub sends as `ty`: the type itself, or for a
/// borrowed one (`&'static str`, `&'static [u8]`) its owned form, which is what can be
/// decoded (`String`, `Vec<u8>`).
fn received(ty: &syn::Type) -> TokenStream {
    match ty {
        syn::Type::Reference(reference) => {
            let elem = &reference.elem;
            quote!(<#elem as ::std::borrow::ToOwned>::Owned)
        }
        ty => quote!(#ty),
    }
}

fn option_str(value: Option<&str>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn dispatch_arm(p: &TokenStream, index: usize, method: &HubMethodDef) -> TokenStream {
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
            Param::Upload { item, .. } => {
                let at = upload_index;
                upload_index += 1;
                if let Some(item) = item {
                    bindings.push(quote_spanned! {item.span()=>
                        #p::assert_upload_item::<#item>();
                    });
                }
                bindings.push(quote! {
                    let #var = __hubs_call.upload(#at)?;
                });
                args.push(quote!(#var));
            }
            Param::Cancel => args.push(quote!(__hubs_call.cancellation())),
            Param::Payload { ty, .. } => {
                let at = payload_index;
                payload_index += 1;
                bindings.push(quote_spanned! {ty.span()=>
                    let #var: #ty = <#ty as #p::Payload>::argument(&__hubs_call, #at)?;
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
    // A failed call's error, checked at the user's error type.
    let failed = match &method.error {
        Some(error) => quote_spanned!(error.span()=> #p::failed::<#error>),
        None => quote!(#p::failed),
    };
    let reply = match &method.ret {
        Return::Unit => quote!(::core::result::Result::Ok(#p::Reply::Unit)),
        Return::Value(ty) => quote_spanned! {ty.span()=>
            #p::reply::<#ty, _>(&__hubs_call, &__hubs_out)
        },
        Return::Stream { stream, in_result } => stream_reply(p, stream, *in_result, &failed),
        Return::Result(ok) => {
            let reply =
                quote_spanned!(ok.span()=> #p::reply::<#ok, _>(&__hubs_call, &__hubs_value));
            quote! {
                match __hubs_out {
                    ::core::result::Result::Ok(__hubs_value) => #reply,
                    ::core::result::Result::Err(__hubs_error) => {
                        ::core::result::Result::Err(#failed(__hubs_error))
                    }
                }
            }
        }
    };
    // A method returning `()` binds no value (clippy's `let_unit_value` would see the
    // binding at the method's name).
    let out = match &method.ret {
        Return::Unit => quote!(let ()),
        _ => quote!(let __hubs_out),
    };
    // The call's future, at the method's name: one that is not `Send` is reported there.
    quote_spanned! {ident.span()=>
        #index => ::std::boxed::Box::pin(async move {
            #(#bindings)*
            #out = #call;
            #reply
        }),
    }
}

/// The reply of a streaming method: its stream (or, when it returns `Result<stream, E>`,
/// its error) for the caller.
fn stream_reply(
    p: &TokenStream,
    stream: &StreamShape,
    in_result: bool,
    failed: &TokenStream,
) -> TokenStream {
    // The stream, at the user's stream type: a stream that is not `Send` is
    // reported there; an item that cannot be encoded, at the item type.
    let wrap = if stream.receiver {
        quote_spanned!(stream.ty.span()=> #p::receiver_stream(__hubs_stream))
    } else {
        quote_spanned!(stream.ty.span()=> __hubs_stream)
    };
    let item = stream_item(stream);
    let to_reply = if stream.fallible {
        let error = match &stream.error {
            Some(error) => quote!(#error),
            None => quote!(_),
        };
        quote_spanned!(item.span()=> #p::fallible_stream::<#item, #error, _>(__hubs_call.protocol(), #wrap))
    } else {
        quote_spanned!(item.span()=> #p::stream::<#item, _>(__hubs_call.protocol(), #wrap))
    };
    if in_result {
        quote! {
            match __hubs_out {
                ::core::result::Result::Ok(__hubs_stream) => {
                    ::core::result::Result::Ok(#p::Reply::Stream(#to_reply))
                }
                ::core::result::Result::Err(__hubs_error) => {
                    ::core::result::Result::Err(#failed(__hubs_error))
                }
            }
        }
    } else {
        quote! {
            let __hubs_stream = __hubs_out;
            ::core::result::Result::Ok(#p::Reply::Stream(#to_reply))
        }
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
        // The conversion at the user's error type: one that is not a `HubError` is
        // reported there.
        let into = match &hook.error {
            Some(error) => quote_spanned!(error.span()=> #p::hook_error::<#error>),
            None => quote!(#p::hook_error),
        };
        quote! {
            match #call {
                ::core::result::Result::Ok(()) => ::core::result::Result::Ok(()),
                ::core::result::Result::Err(__hubs_error) => ::core::result::Result::Err(#into(__hubs_error)),
            }
        }
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

fn on_authentication_refreshed(p: &TokenStream, hook: &Hook) -> TokenStream {
    let ident = &hook.ident;
    let cx = hook_context(p, hook);
    let call = if hook.is_async {
        quote!(Self::#ident(&*self, #cx).await)
    } else {
        quote!(Self::#ident(&*self, #cx))
    };
    quote! {
        fn on_authentication_refreshed(
            self: #p::Arc<Self>,
            __hubs_cx: #p::Context<Self>,
        ) -> #p::BoxFuture<()> {
            ::std::boxed::Box::pin(async move { #call; })
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
    // `Module::hub::<Self>()` elsewhere should not add its own error to the real one.
    let typescript = input.typescript.map(|_| {
        let name = super::model::last_segment(self_ty)
            .map_or_else(|| "Hub".to_owned(), |s| s.ident.to_string());
        quote! {
            #p::typescript_items! {
                impl #p::typescript::DescribeHub for #self_ty {
                    type Client = #p::Untyped;
                    const NAME: &'static str = #name;
                    fn describe(_: &mut #p::typescript::Describer<'_>) {}
                }
            }
        }
    });
    quote! {
        #typescript
        const _: () = {
            impl #p::Hub for #self_ty {
                type Client = #p::Untyped;
                fn methods() -> &'static [#p::HubMethod] {
                    &[]
                }

                fn invoke(
                    self: #p::Arc<Self>,
                    _: usize,
                    _: #p::Call<Self>,
                ) -> #p::BoxFuture<::core::result::Result<#p::Reply, #p::DispatchError>> {
                    ::std::boxed::Box::pin(async {
                        ::core::result::Result::Err(#p::DispatchError::hub("Method does not exist."))
                    })
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use crate::diag::Errors;
    use crate::hub::{model, parse};

    /// The runtime's method descriptor is `__private::HubMethod`, in the output and in the
    /// fallback after an error alike.
    #[test]
    fn names_the_runtime_descriptor_hub_method() {
        let errors = Errors::new();
        let input = parse::parse(
            quote!(),
            quote! {
                impl Chat {
                    pub fn send(&self, text: String) {}
                }
            },
            &errors,
        )
        .expect("an impl block");
        errors.finish().expect("no mistakes");
        let expanded = super::expand(&model::lower(&input)).to_string();
        let fallback = super::fallback(&input).to_string();
        for out in [expanded, fallback] {
            assert!(out.contains(":: hubs :: __private :: HubMethod"), "{out}");
            assert!(!out.contains("__private :: Method"), "{out}");
        }
    }
}
