//! The hub's `on_connected` and `on_disconnected`, inside the server's and the hub's
//! filters.

use std::sync::Arc;

use hubs_protocol::HubError;

use crate::base::filter::{ConnectionInfo, LastHook, NextHook};
use crate::base::future::BoxFuture;
use crate::dispatch::task::Task;
use crate::hub::definition::Hub;

fn connection_info<H: Hub>(cx: &Task<H>) -> ConnectionInfo {
    ConnectionInfo {
        hub: cx.shared().name.clone(),
        connection_id: cx.connection_id().clone(),
        user: cx.context().current().user_arc(),
        user_id: cx.user_identifier().map(Arc::from),
    }
}

/// The hub's `on_connected` inside the server's and the hub's filters.
pub(crate) fn on_connected<H: Hub>(cx: &Task<H>) -> BoxFuture<Result<(), HubError>> {
    let runtime = cx.runtime();
    let (hub, hook_cx) = (runtime.hub.clone(), cx.context().current());
    let last: LastHook<Result<(), HubError>> = Box::new(move || hub.on_connected(hook_cx));
    if runtime.hook_filters.is_empty() {
        return last();
    }
    NextHook::new(runtime.hook_filters.clone(), last).run(connection_info(cx))
}

/// The hub's `on_disconnected` inside the server's and the hub's filters.
pub(crate) fn on_disconnected<H: Hub>(cx: Task<H>, error: Option<HubError>) -> BoxFuture<()> {
    let runtime = cx.runtime().clone();
    runtime.forget(cx.connection_id());
    let info = connection_info(&cx);
    let hub = runtime.hub.clone();
    let hook_error = error.clone();
    let hook_cx = cx.context().current();
    let last: LastHook<()> = Box::new(move || hub.on_disconnected(hook_cx, hook_error));
    if runtime.hook_filters.is_empty() {
        return last();
    }
    NextHook::new(runtime.hook_filters.clone(), last).run(info, error)
}
