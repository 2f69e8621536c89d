//! The boxed future of every object-safe async trait here.

use std::future::Future;
use std::pin::Pin;

/// A boxed future that can move between threads, as generated dispatchers return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
