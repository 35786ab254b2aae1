//! `vigil package-assets --out DIR` (not in `--help`): the man pages and shell completions of the Debian
//! package, generated from the command line itself so that they cannot drift from it.
//!
//! packaging/build-deb.sh runs it and hands the files to cargo-deb (see
//! `[package.metadata.deb]` in crates/vigil/Cargo.toml and docs/install.md). Writes:
//!
//! - `DIR/man/vigil.1` and one page per visible subcommand (`vigil-serve.1`, `vigil-user-add.1` …);
//! - `DIR/completions/vigil.bash`, `_vigil` (zsh) and `vigil.fish`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use clap_complete::Shell;

/// Arguments of `vigil package-assets` (parsed on their own: see `main`).
#[derive(clap::Parser, Debug)]
#[command(
    name = "vigil package-assets",
    about = "Write vigil's man pages and shell completions (for packaging)"
)]
struct PackageAssetsArgs {
    /// Directory to write `man/` and `completions/` into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// `vigil package-assets --out DIR`: argv[1] is `package-assets`.
pub fn main() -> std::process::ExitCode {
    let args = PackageAssetsArgs::parse_from(std::env::args_os().skip(1));
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes the man pages and completions of the whole `vigil` command line under `args.out`.
fn run(args: PackageAssetsArgs) -> anyhow::Result<()> {
    let man_dir = args.out.join("man");
    let completions_dir = args.out.join("completions");
    for dir in [&man_dir, &completions_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }

    // `Cli` does not know this subcommand, so neither the pages nor the completions offer it.
    clap_mangen::generate_to(crate::Cli::command(), &man_dir)
        .with_context(|| format!("writing man pages to {}", man_dir.display()))?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = crate::Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "vigil", &completions_dir).with_context(
            || {
                format!(
                    "writing {shell} completion to {}",
                    completions_dir.display()
                )
            },
        )?;
    }

    let mut written: Vec<String> = std::fs::read_dir(&man_dir)?
        .chain(std::fs::read_dir(&completions_dir)?)
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .collect();
    written.sort();
    for path in written {
        println!("wrote {path}");
    }
    Ok(())
}
