//! The `hearth` binary: parse the command line, hand over to the library.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hearth::tls::install_crypto_provider();
    hearth::cli::run(hearth::cli::Cli::parse()).await
}
