//! Fixtures shared by the hubs test suites.
