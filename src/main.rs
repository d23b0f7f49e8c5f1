//! The `verity` binary: install the rustls crypto provider, then run the command line.

use std::process::ExitCode;

fn main() -> ExitCode {
    // One process-wide provider (aws-lc-rs, as sigstore and kube use) so no rustls config can
    // find two and refuse to choose.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("error: a rustls crypto provider was already installed");
        return ExitCode::from(2);
    }
    verity::cli::main()
}
