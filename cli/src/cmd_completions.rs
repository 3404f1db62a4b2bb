//! `funmagic completions SHELL`.

use clap::CommandFactory;

pub fn run(shell: clap_complete::Shell) {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(shell, &mut cmd, "funmagic", &mut std::io::stdout());
}
