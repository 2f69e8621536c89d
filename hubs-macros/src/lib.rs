//! The procedural macros of hubs. Use them through the `hubs` facade.
