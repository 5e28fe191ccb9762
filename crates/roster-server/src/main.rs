//! The `roster` command: the server and the operations around it.

fn main() -> std::process::ExitCode {
    roster_server::cli::main()
}
