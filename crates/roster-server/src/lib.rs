//! The Roster application as a library: the HTTP API, the engine that applies
//! the rules through the store, the job workers and scheduler, and the `roster`
//! command line. `main.rs` only calls [`cli::main`]; tests build the router
//! in-process with [`app::router`].

pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod engine;
pub mod error;
pub mod input;
pub mod openapi;
pub mod settings;
pub mod state;
