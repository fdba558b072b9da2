//! Wire-level helpers for tests (and benchmarks) that talk to a real server the way its
//! clients do: a raw HTTP/1.1 client ([`http`]), the edge's request signature ([`edge`]) and
//! end-user tokens ([`jwt`]); and the real servers a suite needs ([`servers`]). One copy, so
//! every suite speaks the same protocol.

pub mod edge;
pub mod http;
pub mod jwt;
pub mod servers;
