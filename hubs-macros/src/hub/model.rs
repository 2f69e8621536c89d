//! The lowered, infallible description of a hub, ready to expand.

use syn::{Ident, Path, Type};

use super::access::{Authorize, LimitSpec};
use super::parse::{FnInput, Input, ParamInput};
use crate::naming::pascal_case;

pub(crate) struct Model {
    pub(crate) self_ty: Type,
    /// `{Hub}Connection` (typed calls from a client to the hub), when the hub type is a
    /// plain path.
    pub(crate) proxy: Option<Ident>,
    pub(crate) krate: Path,
    /// The `#[client]` trait of `#[hub(client = Trait)]`, as written: its proxy is found
    /// through the trait (`<dyn Trait as ClientTrait>::Proxy`), so importing the trait is
    /// enough.
    pub(crate) client: Option<Path>,
    pub(crate) methods: Vec<HubMethodDef>,
    pub(crate) on_connected: Option<Hook>,
    pub(crate) on_disconnected: Option<Hook>,
    pub(crate) on_authentication_refreshed: Option<Hook>,
    /// The private functions of the block, as (wire name, Rust name): a client calling
    /// one gets "Method does not exist.", and the server logs why.
    pub(crate) private: Vec<(String, String)>,
    /// What every connection must meet.
    pub(crate) authorize: Option<Authorize>,
    /// Whether the hub describes itself to `hubs::typescript`.
    pub(crate) typescript: bool,
}

impl Model {
    /// The hub's `Hub::Client`: the proxy family of its `#[client]` trait, found through
    /// the trait (`<dyn Trait as ClientTrait>::Proxy`, at the user's span), or `Untyped`.
    pub(crate) fn client_family(&self, p: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        match &self.client {
            Some(client) => {
                quote::quote_spanned!(syn::spanned::Spanned::span(client)=> <dyn #client as #p::ClientTrait>::Proxy)
            }
            None => quote::quote!(#p::Untyped),
        }
    }
}

/// A method clients call, as the macro describes it: `expand` turns it into the
/// runtime's method descriptor and a dispatch arm.
pub(crate) struct HubMethodDef {
    pub(crate) ident: Ident,
    pub(crate) wire: String,
    pub(crate) is_async: bool,
    pub(crate) params: Vec<Param>,
    pub(crate) ret: Return,
    /// The `E` of a `Result<T, E>` return (a value or a stream), as written.
    pub(crate) error: Option<Type>,
    pub(crate) authorize: Option<Authorize>,
    pub(crate) limits: Vec<LimitSpec>,
    pub(crate) docs: Vec<String>,
}

pub(crate) enum Param {
    /// `&Context<Self>` (by reference) or `Context<Self>`.
    Context { by_ref: bool },
    /// An injected service: `&T` (by reference) or `Arc<T>`.
    Service {
        ty: Type,
        key: Option<String>,
        by_ref: bool,
    },
    /// A wire argument.
    Payload { ty: Type, name: Option<Ident> },
    /// A client-to-server stream: `UploadStream<T>`.
    Upload {
        item: Option<Type>,
        name: Option<Ident>,
    },
    /// The call's cancellation token.
    Cancel,
}

pub(crate) enum Return {
    Unit,
    Value(Type),
    Result(Type),
    /// A server-to-client stream, possibly behind a `Result` (failing before any item).
    Stream {
        stream: Box<StreamShape>,
        in_result: bool,
    },
}

/// What a streaming method returns.
pub(crate) struct StreamShape {
    /// The stream type as written (`impl Stream<Item = …>` or `Receiver<…>`).
    pub(crate) ty: Type,
    /// The item type as written (`T` or `Result<T, E>`).
    pub(crate) item: Type,
    /// The `E` of `Result<T, E>` items, as written.
    pub(crate) error: Option<Type>,
    /// Whether items are `Result`s (an `Err` ends the stream with an error).
    pub(crate) fallible: bool,
    /// A `tokio::sync::mpsc::Receiver<T>` rather than an `impl Stream`.
    pub(crate) receiver: bool,
}

/// `impl Stream<Item = T>` or `Receiver<T>`.
pub(crate) fn stream_shape(ty: &Type) -> Option<StreamShape> {
    let (item, receiver) = match ty {
        Type::ImplTrait(imp) => {
            let item = imp.bounds.iter().find_map(|bound| {
                let syn::TypeParamBound::Trait(bound) = bound else {
                    return None;
                };
                let segment = bound.path.segments.last().filter(|s| s.ident == "Stream")?;
                let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
                    return None;
                };
                args.args.iter().find_map(|arg| match arg {
                    syn::GenericArgument::AssocType(assoc) if assoc.ident == "Item" => {
                        Some(assoc.ty.clone())
                    }
                    _ => None,
                })
            })?;
            (item, false)
        }
        other => {
            let segment = last_segment(other).filter(|s| s.ident == "Receiver")?;
            (single_generic(segment)?.clone(), true)
        }
    };
    let fallible = last_segment(&item).is_some_and(|s| s.ident == "Result");
    Some(StreamShape {
        ty: ty.clone(),
        error: result_error(&item),
        item,
        fallible,
        receiver,
    })
}

/// The `E` of `Result<T, E>`, when the type is written so.
pub(crate) fn result_error(ty: &Type) -> Option<Type> {
    let segment = last_segment(ty).filter(|s| s.ident == "Result")?;
    let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.iter().nth(1) {
        Some(syn::GenericArgument::Type(error)) => Some(error.clone()),
        _ => None,
    }
}

/// The `E` of a method returning `Result<T, E>` (a value or a stream).
pub(crate) fn return_error(output: &syn::ReturnType) -> Option<Type> {
    match output {
        syn::ReturnType::Type(_, ty) => result_error(ty),
        syn::ReturnType::Default => None,
    }
}

/// The item type a client receives: `T` for `T` and for `Result<T, E>`.
pub(crate) fn stream_item(stream: &StreamShape) -> &Type {
    let ok = stream
        .fallible
        .then(|| last_segment(&stream.item))
        .flatten()
        .and_then(|segment| match &segment.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.first(),
            _ => None,
        })
        .and_then(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        });
    ok.unwrap_or(&stream.item)
}

/// `UploadStream<T>`.
pub(crate) fn is_upload(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "UploadStream")
}

/// `CancellationToken`.
pub(crate) fn is_cancel(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "CancellationToken")
}

pub(crate) struct Hook {
    pub(crate) ident: Ident,
    pub(crate) is_async: bool,
    /// Whether the hook returns `Result<(), E>` (else `()`).
    pub(crate) fallible: bool,
    /// The `E` of `Result<(), E>`, as written.
    pub(crate) error: Option<Type>,
    /// Whether `on_disconnected` takes the error parameter.
    pub(crate) takes_error: bool,
    pub(crate) context: Option<bool>,
}

pub(crate) const ON_CONNECTED: &str = "on_connected";
pub(crate) const ON_DISCONNECTED: &str = "on_disconnected";
pub(crate) const ON_AUTHENTICATION_REFRESHED: &str = "on_authentication_refreshed";

/// The last path segment's name, when the type is a plain path.
pub(crate) fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// The single generic type argument of a path segment (`Arc<T>` → `T`).
pub(crate) fn single_generic(segment: &syn::PathSegment) -> Option<&Type> {
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `ty` is `Context<…>` or `&Context<…>`; `Some(by_ref)` if so.
pub(crate) fn context_param(ty: &Type) -> Option<bool> {
    match ty {
        Type::Reference(reference) => context_param(&reference.elem)
            .filter(|by_ref| !by_ref)
            .map(|_| true),
        other => last_segment(other)
            .filter(|s| s.ident == "Context")
            .map(|_| false),
    }
}

/// The service type inside `&T` or `Arc<T>`, with whether it is a reference.
pub(crate) fn service_type(ty: &Type) -> Option<(Type, bool)> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => {
            Some(((*reference.elem).clone(), true))
        }
        other => {
            let segment = last_segment(other).filter(|s| s.ident == "Arc")?;
            single_generic(segment).map(|inner| (inner.clone(), false))
        }
    }
}

pub(crate) fn return_shape(output: &syn::ReturnType) -> Return {
    let shape = plain_return_shape(output);
    match shape {
        Return::Result(ok) => match stream_shape(&ok) {
            Some(stream) => Return::Stream {
                stream: Box::new(stream),
                in_result: true,
            },
            None => Return::Result(ok),
        },
        Return::Value(ty) => match stream_shape(&ty) {
            Some(stream) => Return::Stream {
                stream: Box::new(stream),
                in_result: false,
            },
            None => Return::Value(ty),
        },
        other => other,
    }
}

fn plain_return_shape(output: &syn::ReturnType) -> Return {
    match output {
        syn::ReturnType::Default => Return::Unit,
        syn::ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => Return::Unit,
            ty => match last_segment(ty) {
                Some(segment) if segment.ident == "Result" => match &segment.arguments {
                    syn::PathArguments::AngleBracketed(args) => match args.args.first() {
                        Some(syn::GenericArgument::Type(ok)) => Return::Result(ok.clone()),
                        _ => Return::Value(ty.clone()),
                    },
                    _ => Return::Value(ty.clone()),
                },
                _ => Return::Value(ty.clone()),
            },
        },
    }
}

/// What a function of the block is, decided once for validation and expansion alike.
pub(crate) enum Role {
    /// `on_connected`, `on_disconnected` or `on_authentication_refreshed`.
    Hook(&'static str),
    /// A method clients call.
    Method,
    /// A private or `#[hub(skip)]` function: left alone.
    Helper,
}

pub(crate) fn role(f: &FnInput) -> Role {
    match f.sig.ident.to_string().as_str() {
        ON_CONNECTED => Role::Hook(ON_CONNECTED),
        ON_DISCONNECTED => Role::Hook(ON_DISCONNECTED),
        ON_AUTHENTICATION_REFRESHED => Role::Hook(ON_AUTHENTICATION_REFRESHED),
        _ if !f.is_pub || f.skip.is_some() => Role::Helper,
        _ => Role::Method,
    }
}

/// What a parameter is, decided once for validation and expansion alike. A service that
/// is neither `&T` nor `Arc<T>` is kept as written (validation reports it).
pub(crate) fn classify(p: &ParamInput) -> Param {
    if let Some((_, key)) = &p.service {
        let (ty, by_ref) = service_type(&p.ty).unwrap_or(((*p.ty).clone(), false));
        Param::Service {
            ty,
            key: key.as_ref().map(syn::LitStr::value),
            by_ref,
        }
    } else if let Some(by_ref) = context_param(&p.ty) {
        Param::Context { by_ref }
    } else if is_upload(&p.ty) {
        Param::Upload {
            item: last_segment(&p.ty).and_then(single_generic).cloned(),
            name: p.name.clone(),
        }
    } else if is_cancel(&p.ty) {
        Param::Cancel
    } else {
        Param::Payload {
            ty: (*p.ty).clone(),
            name: p.name.clone(),
        }
    }
}

/// The wire name of a method: its `rename`, else its name in PascalCase.
pub(crate) fn wire_name(f: &FnInput) -> String {
    f.rename
        .as_ref()
        .map_or_else(|| pascal_case(&f.sig.ident.to_string()), syn::LitStr::value)
}

pub(crate) fn lower(input: &Input) -> Model {
    let krate = input
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::hubs));
    let mut methods = Vec::new();
    let mut on_connected = None;
    let mut on_disconnected = None;
    let mut on_authentication_refreshed = None;
    let mut private = Vec::new();
    for f in &input.fns {
        let is_async = f.sig.asyncness.is_some();
        let params: Vec<Param> = f.params.iter().map(classify).collect();
        match role(f) {
            Role::Helper => {
                if !f.is_pub && f.skip.is_none() {
                    private.push((
                        pascal_case(&f.sig.ident.to_string()),
                        f.sig.ident.to_string(),
                    ));
                }
                continue;
            }
            Role::Hook(name) => {
                let context = params.iter().find_map(|p| match p {
                    Param::Context { by_ref } => Some(*by_ref),
                    _ => None,
                });
                let hook = Hook {
                    ident: f.sig.ident.clone(),
                    is_async,
                    fallible: matches!(return_shape(&f.sig.output), Return::Result(_)),
                    error: return_error(&f.sig.output),
                    takes_error: params.iter().any(|p| !matches!(p, Param::Context { .. })),
                    context,
                };
                match name {
                    ON_CONNECTED => on_connected = Some(hook),
                    ON_DISCONNECTED => on_disconnected = Some(hook),
                    _ => on_authentication_refreshed = Some(hook),
                }
                continue;
            }
            Role::Method => {}
        }
        methods.push(HubMethodDef {
            ident: f.sig.ident.clone(),
            wire: wire_name(f),
            is_async,
            params,
            ret: return_shape(&f.sig.output),
            error: return_error(&f.sig.output),
            authorize: f.authorize.clone(),
            limits: f.limits.clone(),
            docs: f.docs.clone(),
        });
    }
    let client = input.client.clone();
    Model {
        proxy: last_segment(&input.item.self_ty)
            .map(|s| quote::format_ident!("{}Connection", s.ident)),
        self_ty: (*input.item.self_ty).clone(),
        krate,
        client,
        methods,
        on_connected,
        on_disconnected,
        on_authentication_refreshed,
        private,
        authorize: input.authorize.clone(),
        typescript: input.typescript.is_some(),
    }
}
