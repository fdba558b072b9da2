//! Integration tests of core-api, one binary: the HTTP API through the router
//! (`oneshot`) and over a real socket, its OpenAPI document, the first start's background
//! catalogue load, and durability across restarts of the real binary.

mod backends;
mod common;
mod erasure;
mod first_run;
mod http_api;
mod ingest;
mod learning;
mod openapi;
mod policy;
mod restart;
mod security;
mod semantics;
mod stores;
