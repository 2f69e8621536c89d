//! The HTTP transports of hubs. Use them through the `hubs` facade.
