//! The `flow` command. Everything it does is in the `cli` module, on top of
//! the `flow_engine` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
