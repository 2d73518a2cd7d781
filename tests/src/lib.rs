//! End-to-end tests of Sitecast over loopback live in `tests/tests/`; this library
//! holds what they share.
