//! Keyway's black-box test suite: one binary (fast to link), one module per area. Every test spawns
//! the real app on port 0 with its own fresh database: SQLite by default, PostgreSQL with
//! `KEYWAY_TEST_BACKEND=postgres` (see `testdb.rs`). `store_contract` checks the store itself, on both.

mod account;
mod audit;
mod boundaries;
mod cli;
mod cluster;
mod csrf;
mod edge;
mod helpers;
mod idp;
mod import;
mod input;
mod jwt;
mod layers;
mod limits;
mod login;
mod me;
mod openapi;
mod pages;
mod policy;
mod races;
mod register;
mod relay;
mod responses;
mod sessions;
mod smtp;
mod sso;
mod startup;
mod store_contract;
mod testdb;
mod timing;
