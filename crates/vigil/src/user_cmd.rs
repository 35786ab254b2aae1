//! `vigil user add|list|remove|passwd|onvif`: manage the users in `<data_dir>/users.json`.
//!
//! Changes are picked up by a running `vigil` process without a restart (the store re-reads the
//! file when it changes). Passwords are read without echo from the terminal (asked twice), or as
//! one line from stdin with `--password-stdin` for scripts; they are never printed.

use std::io::{BufRead, IsTerminal as _, Read as _, Write};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use vigil_auth::{Role, UserStore};

/// `vigil user ...` arguments.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// The data directory option shared by every `vigil user` subcommand.
#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Data directory holding users.json (the same one `vigil` runs with).
    #[arg(long = "data", value_name = "DIR", env = "VIGIL_DATA")]
    pub data: PathBuf,
}

/// The `vigil user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (asks for the password twice).
    Add {
        /// Login name (1-64 characters, no ':' or control characters).
        name: String,
        /// What the user may do.
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: Role,
        /// Cameras a viewer may see, comma-separated (default: every camera).
        #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
        cameras: Option<Vec<String>>,
        /// Read the password as one line from stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// List users and their roles.
    List {
        #[command(flatten)]
        data: DataDir,
    },
    /// Delete a user (with their second factors and passkeys).
    Remove {
        /// Login name.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Remove a user's second factors (authenticator app, passkeys, recovery codes), for an owner
    /// locked out of the web app: console access is the trust anchor. They sign in with the
    /// password alone and enrol again if the policy requires it.
    #[command(name = "reset-2fa")]
    Reset2fa {
        /// Login name.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Give a user a new random ONVIF credential, shown once: the password an ONVIF client
    /// (VMS, NVR, phone app) uses for WS-UsernameToken PasswordDigest. Replaces any previous
    /// one; a password change revokes it. See docs/onvif.md.
    Onvif {
        /// Login name.
        name: String,
        /// Remove the credential instead (HTTP Digest with the password still works).
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Change a user's password.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password as one line from stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        data: DataDir,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: vigil_auth::AuthError| e.to_string())
}

/// Where passwords come from; abstracted so the command logic is testable.
pub trait PasswordSource {
    /// Reads a new password (asking twice on a terminal).
    fn new_password(&mut self, from_stdin: bool) -> anyhow::Result<String>;
}

/// The real terminal/stdin.
pub struct Console;

impl PasswordSource for Console {
    fn new_password(&mut self, from_stdin: bool) -> anyhow::Result<String> {
        if from_stdin {
            return read_password_line(&mut std::io::stdin().lock());
        }
        if !std::io::stdin().is_terminal() {
            bail!("stdin is not a terminal: pass --password-stdin to read the password from it");
        }
        let first = rpassword::prompt_password("New password: ").context("reading password")?;
        let second = rpassword::prompt_password("Repeat password: ").context("reading password")?;
        if first != second {
            bail!("the passwords do not match; nothing was changed");
        }
        Ok(first)
    }
}

/// Reads one line (without its line ending) as the password.
pub fn read_password_line(r: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    // Bounded read: a password is at most 1024 bytes; a huge stdin is a mistake, not a password.
    r.by_ref()
        .take(4096)
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        bail!("no password on stdin");
    }
    Ok(pw.to_owned())
}

/// Runs `vigil user ...` with the console.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    run_with(args, &mut Console, &mut std::io::stdout().lock())
}

/// Runs `vigil user ...` with injected password source and output.
pub fn run_with(
    args: UserArgs,
    pw: &mut dyn PasswordSource,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let open = |d: &DataDir| {
        UserStore::open(&d.data)
            .with_context(|| format!("opening the user database in {}", d.data.display()))
    };
    match args.command {
        UserCommand::Add {
            name,
            role,
            cameras,
            password_stdin,
            data,
        } => {
            let store = open(&data)?;
            // Validate the name before asking for a password the user would type in vain.
            vigil_auth::validate_name(&name)?;
            vigil_auth::validate_cameras(cameras.as_deref())?;
            if cameras.is_some() && role == Role::Admin {
                bail!("--cameras limits viewers only; admins see every camera (add --role viewer)");
            }
            if store.list()?.iter().any(|u| u.name == name) {
                bail!("user {name:?} already exists; use `vigil user passwd {name}` to change the password");
            }
            let password = pw.new_password(password_stdin)?;
            store.add_with_cameras(&name, &password, role, cameras)?;
            writeln!(out, "added {role} {name:?} to {}", store.path().display())?;
        }
        UserCommand::List { data } => {
            let store = open(&data)?;
            let users = store.list()?;
            if users.is_empty() {
                writeln!(
                    out,
                    "no users yet; create one with `vigil user add NAME --data {}`",
                    data.data.display()
                )?;
            }
            for u in users {
                match &u.cameras {
                    None => writeln!(out, "{}\t{}", u.name, u.role)?,
                    Some(c) => writeln!(out, "{}\t{}\t{}", u.name, u.role, c.join(","))?,
                }
            }
        }
        UserCommand::Remove { name, data } => {
            let store = open(&data)?;
            store.remove(&name)?;
            // A user made again under this name must not inherit these second factors.
            let accounts = vigil_web::accounts::Accounts::open(&data.data)
                .with_context(|| format!("opening web.sqlite3 in {}", data.data.display()))?;
            accounts.second_factor_remove(&name)?;
            writeln!(out, "removed {name:?}")?;
            if !store.list()?.iter().any(|u| u.role == Role::Admin) {
                writeln!(out, "note: no admin user is left")?;
            }
        }
        UserCommand::Reset2fa { name, data } => {
            let store = open(&data)?;
            if !store.list()?.iter().any(|u| u.name == name) {
                bail!("no user named {name:?}");
            }
            let accounts = vigil_web::accounts::Accounts::open(&data.data)
                .with_context(|| format!("opening web.sqlite3 in {}", data.data.display()))?;
            if accounts.second_factor_remove(&name)? {
                accounts.audit(
                    &name,
                    std::net::IpAddr::from([0, 0, 0, 0]),
                    "second_factor_removed",
                    "at the console (vigil user reset-2fa)",
                );
                writeln!(out, "second factor of {name:?} removed")?;
            } else {
                writeln!(out, "{name:?} has no second factor")?;
            }
        }
        UserCommand::Onvif { name, clear, data } => {
            let store = open(&data)?;
            if clear {
                store.clear_onvif_credential(&name)?;
                writeln!(out, "ONVIF credential of {name:?} removed")?;
            } else {
                let credential = store.set_onvif_credential(&name)?;
                writeln!(
                    out,
                    "ONVIF password of {name:?} (shown once; user name {name:?}):\n{credential}"
                )?;
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            data,
        } => {
            let store = open(&data)?;
            if !store.list()?.iter().any(|u| u.name == name) {
                bail!("no user named {name:?}");
            }
            let password = pw.new_password(password_stdin)?;
            store.set_password(&name, &password)?;
            writeln!(out, "password of {name:?} changed")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }
    #[derive(Subcommand)]
    enum Top {
        User(UserArgs),
    }

    struct Fixed(&'static str);
    impl PasswordSource for Fixed {
        fn new_password(&mut self, _: bool) -> anyhow::Result<String> {
            Ok(self.0.to_owned())
        }
    }

    fn run_cli(argv: &[&str], pw: &'static str) -> anyhow::Result<String> {
        let Top::User(args) = Cli::try_parse_from(argv)?.cmd;
        let mut out = Vec::new();
        run_with(args, &mut Fixed(pw), &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn add_list_passwd_remove() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let pw = "correct horse battery";
        let out = run_cli(
            &[
                "vigil", "user", "add", "alice", "--role", "viewer", "--data", d,
            ],
            pw,
        )
        .unwrap();
        assert!(out.contains("added viewer \"alice\""), "{out}");
        assert!(!out.contains(pw));
        assert!(run_cli(&["vigil", "user", "add", "alice", "--data", d], pw).is_err());
        let err = run_cli(&["vigil", "user", "add", "bob", "--data", d], "password").unwrap_err();
        assert!(err.to_string().contains("password refused"), "{err}");
        assert_eq!(
            run_cli(&["vigil", "user", "list", "--data", d], pw).unwrap(),
            "alice\tviewer\n"
        );
        run_cli(
            &["vigil", "user", "passwd", "alice", "--data", d],
            "new pass phrase",
        )
        .unwrap();
        let store = UserStore::open(dir.path()).unwrap();
        assert!(store
            .verify_password("alice", "new pass phrase")
            .unwrap()
            .is_some());
        assert!(run_cli(&["vigil", "user", "passwd", "nobody", "--data", d], pw).is_err());
        // reset-2fa: an enrolled authenticator is removed, and says so.
        let accounts = vigil_web::accounts::Accounts::open(dir.path()).unwrap();
        accounts.totp_begin("alice").unwrap();
        drop(accounts);
        let out = run_cli(&["vigil", "user", "reset-2fa", "alice", "--data", d], pw).unwrap();
        assert_eq!(out, "second factor of \"alice\" removed\n");
        let out = run_cli(&["vigil", "user", "reset-2fa", "alice", "--data", d], pw).unwrap();
        assert_eq!(out, "\"alice\" has no second factor\n");
        assert!(run_cli(&["vigil", "user", "reset-2fa", "nobody", "--data", d], pw).is_err());
        run_cli(&["vigil", "user", "remove", "alice", "--data", d], pw).unwrap();
        assert!(store.is_empty().unwrap());
        assert!(run_cli(
            &["vigil", "user", "add", "x", "--role", "root", "--data", d],
            pw
        )
        .is_err());
    }

    #[test]
    fn viewer_limited_to_cameras() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let pw = "correct horse battery";
        run_cli(
            &[
                "vigil",
                "user",
                "add",
                "vi",
                "--role",
                "viewer",
                "--cameras",
                "front,yard",
                "--data",
                d,
            ],
            pw,
        )
        .unwrap();
        let u = UserStore::open(dir.path())
            .unwrap()
            .get("vi")
            .unwrap()
            .unwrap();
        assert_eq!(u.cameras, Some(vec!["front".to_owned(), "yard".to_owned()]));
        assert!(u.can_view("yard") && !u.can_view("back"));
        assert_eq!(
            run_cli(&["vigil", "user", "list", "--data", d], pw).unwrap(),
            "vi\tviewer\tfront,yard\n"
        );
        // Admins see everything: a camera list for one is a mistake.
        assert!(run_cli(
            &[
                "vigil",
                "user",
                "add",
                "ad",
                "--cameras",
                "front",
                "--data",
                d
            ],
            pw
        )
        .is_err());
    }

    #[test]
    fn onvif_credential_set_shown_once_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let pw = "correct horse battery";
        run_cli(&["vigil", "user", "add", "cam", "--data", d], pw).unwrap();
        let out = run_cli(&["vigil", "user", "onvif", "cam", "--data", d], pw).unwrap();
        let shown = out.lines().last().unwrap();
        let store = UserStore::open(dir.path()).unwrap();
        assert_eq!(
            store.onvif_credential("cam").unwrap().map(|c| c.0),
            Some(shown.to_owned())
        );
        run_cli(
            &["vigil", "user", "onvif", "cam", "--clear", "--data", d],
            pw,
        )
        .unwrap();
        assert_eq!(store.onvif_credential("cam").unwrap(), None);
        assert!(run_cli(&["vigil", "user", "onvif", "nobody", "--data", d], pw).is_err());
    }

    #[test]
    fn password_line_from_stdin() {
        assert_eq!(
            read_password_line(&mut &b"s3cret pass\r\nrest"[..]).unwrap(),
            "s3cret pass"
        );
        assert!(read_password_line(&mut &b"\n"[..]).is_err());
    }
}
