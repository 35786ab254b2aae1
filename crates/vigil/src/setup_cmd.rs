//! `vigil setup-url --config FILE`: prints a fresh one-time setup link while no user exists.
//!
//! `vigil serve` prints a link at first start, but that line may have scrolled out of the
//! journal, or the link expired (an hour). The running server keeps its own token's hash in
//! memory, out of this process's reach, so this command mints another token and leaves its
//! SHA-256 and expiry in `<data>/setup-token` (mode 0600, [`vigil_web::setup_file`]), which
//! the server accepts beside its own and deletes once setup is done.
//!
//! Trust anchor: whoever can run this command with the configuration file and write to the
//! data directory controls the recorder already; the link only hands them the web app's
//! first admin, which is what console access means on a fresh install.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use vigil_auth::UserStore;

use crate::config::Config;

/// Options of `vigil setup-url`.
#[derive(Args, Debug)]
pub struct SetupUrlArgs {
    /// The configuration file of the server (see vigil.example.toml and docs/config.md).
    #[arg(long, value_name = "FILE", env = "VIGIL_CONFIG")]
    config: PathBuf,
}

/// Mints a setup token for the server of `args.config` and prints `setup-url …` on stdout.
pub fn run(args: SetupUrlArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    let Some(listen) = cfg.web.listen else {
        bail!(
            "the web app is off ([web] listen = \"off\" in {}), so there is no setup page; \
             add users with `vigil user add`",
            args.config.display()
        );
    };
    crate::serve_cmd::create_private_dir(&cfg.data_dir)?;
    let users = UserStore::open(&cfg.data_dir)
        .with_context(|| format!("opening the user store in {}", cfg.data_dir.display()))?;
    if !users.is_empty()? {
        bail!("setup is done; use `vigil user add` to add users");
    }
    let token = vigil_web::setup_file::mint(&cfg.data_dir, vigil_web::accounts::SETUP_TOKEN_TTL)?;
    give_to_data_dir_owner(&cfg.data_dir)?;
    tracing::info!(
        file = %vigil_web::setup_file::path(&cfg.data_dir).display(),
        "minted a one-time setup token (valid one hour)"
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "setup-url {}",
        vigil_web::server::setup_url(listen, &token)
    )?;
    out.flush()?;
    Ok(())
}

/// Run as root for a server that runs as its own user (`sudo vigil setup-url …` on a packaged
/// install), the token file would be root's and the server could not read it: hand it to the
/// owner of the data directory. Nothing to do when both are the same user.
fn give_to_data_dir_owner(data_dir: &Path) -> anyhow::Result<()> {
    let file = vigil_web::setup_file::path(data_dir);
    let dir_meta =
        std::fs::metadata(data_dir).with_context(|| format!("reading {}", data_dir.display()))?;
    let file_meta =
        std::fs::metadata(&file).with_context(|| format!("reading {}", file.display()))?;
    if dir_meta.uid() == file_meta.uid() {
        return Ok(());
    }
    if let Err(e) = std::os::unix::fs::chown(&file, Some(dir_meta.uid()), Some(dir_meta.gid())) {
        // A token the server cannot read is useless; do not leave it behind.
        vigil_web::setup_file::remove(data_dir);
        return Err(e).with_context(|| {
            format!(
                "giving {} to the owner of {} (run this command as that user)",
                file.display(),
                data_dir.display()
            )
        });
    }
    Ok(())
}
