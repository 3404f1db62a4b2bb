//! `funmagic-admin`: the terminal admin console (ratatui). Not built yet: this stub only
//! checks that it can reach the server through the SDK, so the binary and its wiring exist.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::var("FUNMAGIC_API_URL").unwrap_or_else(|_| funmagic_sdk::DEFAULT_API_URL.to_string());
    eprintln!("funmagic-admin: the interactive console is not implemented yet (planned); checking {url} instead");
    let client = match funmagic_sdk::ClientBuilder::new(url.clone()).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("funmagic-admin: {e}");
            return ExitCode::from(2);
        }
    };
    match client.health_get().await {
        Ok(report) => {
            println!("server {} is up (version {})", url, report.into_inner().version);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("funmagic-admin: cannot reach {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
