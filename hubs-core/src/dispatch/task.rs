//! What the per-connection task works with: the [`Context`] hub methods receive, and the
//! runtime (the hub, its filter chains, its method table) that only the task needs.

use std::ops::Deref;
use std::sync::Arc;

use crate::hub::context::Context;
use crate::hub::definition::Hub;
use crate::runtime::HubRuntime;

/// One connection as its task sees it: the hub context, plus the runtime. Derefs to the
/// context.
pub(crate) struct Task<H: Hub> {
    cx: Context<H>,
    runtime: Arc<HubRuntime<H>>,
}

impl<H: Hub> Clone for Task<H> {
    fn clone(&self) -> Self {
        Self {
            cx: self.cx.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<H: Hub> Task<H> {
    pub(crate) fn new(cx: Context<H>, runtime: Arc<HubRuntime<H>>) -> Self {
        Self { cx, runtime }
    }

    /// The hub context, as methods and hooks receive it.
    pub(crate) fn context(&self) -> &Context<H> {
        &self.cx
    }

    /// The mounted hub: the hub value, its filter chains and method table.
    pub(crate) fn runtime(&self) -> &Arc<HubRuntime<H>> {
        &self.runtime
    }
}

impl<H: Hub> Deref for Task<H> {
    type Target = Context<H>;

    fn deref(&self) -> &Context<H> {
        &self.cx
    }
}
