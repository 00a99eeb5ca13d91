//! Command-line flags and subcommands (the user-facing contract of `infra`).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (validate: no errors)
  1  the site has errors, or the command failed (nothing was changed)
  2  bad command-line usage";

#[derive(Debug, Parser)]
#[command(
    name = "infra",
    version,
    about = "Declarative infrastructure: roles, inventories and templates; plan and apply.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Run as if started in DIR (the site root).
    #[arg(
        short = 'C',
        long = "directory",
        value_name = "DIR",
        global = true,
        default_value = "."
    )]
    pub dir: PathBuf,

    /// When to colour diagnostics on stderr (NO_COLOR is honoured by auto).
    #[arg(long, value_enum, global = true, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RolesFormat {
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostsFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the whole site: every problem at once, with file, line and a hint.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Check only this environment (default: all of them).
        env: Option<String>,
        /// Override a variable, highest precedence: --var app.gunicorn.workers=8
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
    /// Which host holds which role (like `salt '*' grains.get roles`).
    Roles {
        #[command(subcommand)]
        command: RolesCommand,
    },
    /// The hosts of an environment: roles, addresses, provider.
    #[command(after_help = EXIT_CODES)]
    Hosts {
        env: String,
        #[arg(long = "out", value_enum, default_value_t = HostsFormat::Text)]
        format: HostsFormat,
    },
    /// The files HOST gets, exactly as they would be written (secrets redacted).
    #[command(after_help = EXIT_CODES)]
    Render {
        env: String,
        host: String,
        /// Print only the file at this destination path, byte for byte.
        dest: Option<String>,
        /// Show secret values instead of <secret: NAME>.
        #[arg(long)]
        show_secrets: bool,
        /// Write the files under DIR (DIR/etc/nginx/nginx.conf, ...) instead of printing them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Override a variable, highest precedence: --var app.gunicorn.workers=8
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Hosts and their roles, sorted; `--by-role` for roles and their hosts.
    #[command(after_help = EXIT_CODES)]
    List {
        env: String,
        /// Roles first, each with the hosts that hold it.
        #[arg(long)]
        by_role: bool,
        #[arg(long = "out", value_enum, default_value_t = RolesFormat::Text)]
        format: RolesFormat,
    },
}
