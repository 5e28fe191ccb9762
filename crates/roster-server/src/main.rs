//! The `roster` command: the server and the operations around it.

mod api;
mod app;
mod auth;
mod bench;
mod body;
mod cli;
mod clock;
mod demo;
mod engine;
mod error;
mod openapi;
mod settings;
mod state;

fn main() -> std::process::ExitCode {
    cli::main()
}
