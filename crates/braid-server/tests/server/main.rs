//! The server's integration tests, one binary: every module starts `braid serve` (in
//! process or as the built executable) on free ports over a temporary directory and
//! speaks to it over REST and gRPC. One binary instead of one per file: each used to
//! link the whole server stack again, which was much of CI's time.

mod common;

mod bad_requests;
mod cli;
mod cluster;
mod explore;
mod grpc;
mod hybrid;
mod mutated_requests;
mod ops;
mod query_api;
mod rest;
mod security;
mod tls;
mod update;
