//! Every misuse `#[hub]` can see, each reported at the offending token.

use std::collections::HashMap;

use syn::{FnArg, Type};

use super::model::{
    ON_CONNECTED, ON_DISCONNECTED, Param, Return, Role, classify, is_cancel, is_upload,
    last_segment, return_shape, role, service_type, single_generic, wire_name,
};
use super::parse::{FnInput, Input};
use crate::diag::Errors;

pub(crate) fn validate(input: &Input, errors: &Errors) {
    let item = &input.item;
    if let Some((_, path, _)) = &item.trait_ {
        errors.error_at(
            path,
            "`#[hub]` goes on an inherent `impl` block, not a trait implementation",
        );
    }
    if !item.generics.params.is_empty() {
        errors.error_at(&item.generics, "hub types cannot be generic");
    }

    let mut wire_names: HashMap<String, String> = HashMap::new();
    for f in &input.fns {
        let role = role(f);
        let not_a_method = match role {
            Role::Hook(name) => Some(format!("`{name}` is a hook, not a method clients call")),
            Role::Helper => {
                Some("this method is not a hub method (it is private or skipped)".to_owned())
            }
            Role::Method => None,
        };
        if let Some(why) = &not_a_method {
            if let Some(span) = f.authorize.as_ref().and_then(|a| a.span) {
                errors.push(syn::Error::new(
                    span,
                    format!("`authorize` applies to hub methods: {why}; put `authorize` on the block (`#[hub(authorize)]`) to require it of every connection"),
                ));
            }
            for limit in &f.limits {
                errors.push(syn::Error::new(
                    limit.span,
                    format!("`limit` applies to hub methods: {why}"),
                ));
            }
        }
        match role {
            Role::Hook(name) => {
                hook(f, name, &item.self_ty, errors);
                continue;
            }
            Role::Helper => {
                match (f.is_pub, &f.rename) {
                    (false, Some(rename)) => errors.error_at(rename, "`rename` on a private method: only visible methods (`pub`, `pub(crate)`, …) are hub methods"),
                    (true, Some(rename)) => errors.error_at(rename, "`rename` on a `#[hub(skip)]` method: clients cannot call a skipped method, so it has no wire name"),
                    (_, None) => {}
                }
                continue;
            }
            Role::Method => {}
        }
        receiver(f, errors);
        signature(f, errors);
        for param in &f.params {
            match classify(param) {
                Param::Service { .. } => {
                    if let Some((span, _)) = &param.service
                        && service_type(&param.ty).is_none()
                    {
                        errors.push(syn::Error::new(
                            *span,
                            "an injected service is taken as `&T` or `Arc<T>`",
                        ));
                    }
                }
                Param::Payload { ty, .. } => payload(&ty, errors),
                Param::Context { .. } => context(&param.ty, &item.self_ty, errors),
                Param::Upload { .. } | Param::Cancel => {}
            }
        }
        let name = f.sig.ident.to_string();
        let wire = wire_name(f);
        if let (true, Some(rename)) = (wire.trim().is_empty(), &f.rename) {
            errors.error_at(
                rename,
                "an empty `rename`: give the wire name clients call the method by",
            );
        }
        let key = wire.to_lowercase();
        match wire_names.get(&key) {
            Some(first) => {
                let message = format!(
                    "duplicate wire name `{wire}` (also used by `{first}`); clients match names without regard to case, so rename one with `#[hub(rename = \"…\")]`"
                );
                match &f.rename {
                    Some(rename) => errors.error_at(rename, message),
                    None => errors.error_at(&f.sig.ident, message),
                }
            }
            None => {
                wire_names.insert(key, name);
            }
        }
    }
}

fn receiver(f: &FnInput, errors: &Errors) {
    match f.sig.inputs.first() {
        // `&self` and `self: &Self` alike: `receiver.ty` is the type either way.
        Some(FnArg::Receiver(receiver)) => match &*receiver.ty {
            Type::Reference(reference) if reference.mutability.is_none() => {}
            Type::Reference(_) => errors.error_at(receiver, "hub methods take `&self`, not `&mut self`: the hub is shared by every call; keep mutable state behind a lock or in `Context::items`"),
            _ if receiver.colon_token.is_none() => errors.error_at(receiver, "hub methods take `&self`, not `self` by value: the hub is shared by every call"),
            _ => errors.error_at(receiver, "hub methods take `&self`: the runtime lends the shared hub to each call; for an `Arc` of the hub, hold one in the hub or use `HubContext`"),
        },
        _ => errors.error_at(
            &f.sig.ident,
            "hub methods take `&self`; mark helper functions `#[hub(skip)]` or make them private",
        ),
    }
}

fn signature(f: &FnInput, errors: &Errors) {
    if !f.sig.generics.params.is_empty() {
        errors.error_at(
            &f.sig.generics,
            "hub methods cannot be generic: clients call them by name with concrete argument types",
        );
    }
    if let Some(unsafety) = &f.sig.unsafety {
        errors.error_at(unsafety, "hub methods cannot be `unsafe`");
    }
    if let Some(variadic) = &f.sig.variadic {
        errors.error_at(variadic, "hub methods cannot be variadic");
    }
    if let syn::ReturnType::Type(_, ty) = &f.sig.output
        && matches!(&**ty, Type::ImplTrait(_))
        && !matches!(return_shape(&f.sig.output), Return::Stream { .. })
    {
        errors.error_at(
            ty,
            "hub methods cannot return `impl Trait` other than `impl Stream<Item = T>`: return a concrete type, a `Result`, or a stream",
        );
    }
}

fn payload(ty: &Type, errors: &Errors) {
    match ty {
        Type::Reference(reference) if is_cancel(&reference.elem) => errors.error_at(
            ty,
            "take the cancellation token by value, `cancel: CancellationToken`: each call gets its own",
        ),
        Type::Reference(reference) if is_upload(&reference.elem) => errors.error_at(
            ty,
            "take an upload stream by value, `items: UploadStream<T>`: the method owns what the client sends",
        ),
        Type::Reference(_) => errors.error_at(
            ty,
            "payload parameters are owned values (they are deserialized from the call); take `String` rather than `&str`, or mark an injected service with `#[hub(service)]`",
        ),
        Type::ImplTrait(_) => errors.error_at(ty, "`impl Trait` parameters are not supported in hub methods"),
        Type::Infer(_) | Type::Never(_) => errors.error_at(
            ty,
            "hub method parameters need a concrete type: the caller's argument is decoded into it",
        ),
        _ => {}
    }
}

/// `&Context<Self>` or `Context<Self>`: not `&mut`, and this hub's context.
fn context(ty: &Type, self_ty: &Type, errors: &Errors) {
    if let Type::Reference(reference) = ty
        && reference.mutability.is_some()
    {
        errors.error_at(
            ty,
            "take the context as `&Context<Self>` or `Context<Self>`, not `&mut`: it is shared by the connection's calls",
        );
        return;
    }
    let hub = last_segment(match ty {
        Type::Reference(reference) => &reference.elem,
        other => other,
    })
    .and_then(single_generic);
    let own = hub.is_some_and(|hub| {
        last_segment(hub).is_some_and(|segment| {
            segment.ident == "Self"
                || last_segment(self_ty).is_some_and(|own| own.ident == segment.ident)
        })
    });
    if let (false, Some(hub)) = (own, hub) {
        errors.error_at(
            hub,
            "a hub method gets its own hub's context: write `Context<Self>`",
        );
    }
}

fn hook(f: &FnInput, name: &str, self_ty: &Type, errors: &Errors) {
    if let Some(rename) = &f.rename {
        errors.error_at(
            rename,
            format!("`{name}` is a hook, not a hub method; it has no wire name"),
        );
    }
    receiver(f, errors);
    if !f.sig.generics.params.is_empty() {
        errors.error_at(&f.sig.generics, format!("`{name}` cannot be generic"));
    }
    let expected = match name {
        ON_CONNECTED => {
            "`on_connected(&self, cx: &Context<Self>)`, returning `()` or `Result<(), HubError>`"
        }
        ON_DISCONNECTED => {
            "`on_disconnected(&self, cx: &Context<Self>, error: Option<HubError>)`, returning `()`"
        }
        _ => "`on_authentication_refreshed(&self, cx: &Context<Self>)`, returning `()`",
    };
    let mut contexts = 0;
    let mut others = 0;
    for param in &f.params {
        if param.service.is_some() {
            errors.push(syn::Error::new(
                param
                    .service
                    .as_ref()
                    .map_or_else(proc_macro2::Span::call_site, |s| s.0),
                format!("hooks cannot inject services; expected {expected}"),
            ));
        } else if matches!(classify(param), Param::Context { .. }) {
            context(&param.ty, self_ty, errors);
            contexts += 1;
            if contexts > 1 {
                errors.error_at(
                    &param.ty,
                    format!("`{name}` takes the context once; expected {expected}"),
                );
            }
        } else {
            others += 1;
            let allowed = name == ON_DISCONNECTED && others == 1 && is_error_option(&param.ty);
            if !allowed {
                errors.error_at(
                    &param.ty,
                    format!("unexpected parameter for `{name}`; expected {expected}"),
                );
            }
        }
    }
    match (name, return_shape(&f.sig.output)) {
        (_, Return::Unit) => {}
        (ON_CONNECTED, Return::Result(_)) => {}
        _ => {
            if let syn::ReturnType::Type(_, ty) = &f.sig.output {
                errors.error_at(
                    ty,
                    format!("unexpected return type for `{name}`; expected {expected}"),
                );
            }
        }
    }
}

/// `Option<HubError>`.
fn is_error_option(ty: &Type) -> bool {
    last_segment(ty)
        .filter(|s| s.ident == "Option")
        .and_then(single_generic)
        .and_then(last_segment)
        .is_some_and(|s| s.ident == "HubError")
}
