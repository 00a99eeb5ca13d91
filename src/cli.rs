//! Command-line flags and subcommands (the user-facing contract of `infra`).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (validate: no errors; plan --detailed-exitcode: no changes)
  1  error: the site has errors, bad usage, a host is unreachable, or apply was refused
     (the environment is locked by another run, say); nothing was changed
  2  plan --detailed-exitcode: there are changes
  3  apply: some hosts failed (the others converged; see the recap);
     apply, rollback: a release's roll stopped (its once commands failed: nothing was
     switched; or a batch failed its health check: that batch is back on its previous
     release, later batches were not touched)";

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
    /// What would change on every host: file diffs, packages, the service actions they trigger.
    #[command(after_help = EXIT_CODES)]
    Plan {
        env: String,
        /// Print the plan as JSON (versioned, Terraform's action names).
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print a Markdown summary for a pull request comment: counts, the cloud changes, each
        /// host's changes folded (secrets stay redacted).
        #[arg(long)]
        markdown: bool,
        /// Exit 0 when nothing would change, 2 when something would, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Also save the plan to FILE, for `infra apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Make every host match the site: ENV, or a plan saved by `infra plan --out FILE`.
    #[command(after_help = EXIT_CODES)]
    Apply {
        /// An environment, or the path of a saved plan.
        target: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Remove everything an aws environment owns: instances, addresses, records, groups, and the
    /// network infra created (volumes with keep_on_destroy stay).
    #[command(after_help = EXIT_CODES)]
    Destroy {
        env: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Break the environment lock left by a run that is over (killed, its machine gone): only
    /// when ID is the lock's current holder, as the refusal of `apply` named it.
    #[command(name = "force-unlock", after_help = EXIT_CODES)]
    ForceUnlock {
        env: String,
        /// The lock ID, as `infra apply` printed it: "locked by ID: who, ...".
        id: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Switch every host of the selected release roles back to an earlier release it keeps (no
    /// build, no once commands), through the same batches, reloads and health checks as apply.
    /// Database migrations are not reversed.
    #[command(after_help = EXIT_CODES)]
    Rollback {
        env: String,
        /// The release to go back to: a commit (or a prefix of one) every selected host of the
        /// role keeps built; default: each host's previous release.
        #[arg(long, value_name = "COMMIT")]
        to: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Only these hosts: a comma list of `host:NAME`, `role:NAME`, globs, or bare names.
        #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
        limit: Vec<String>,
        /// Override a variable, highest precedence: --var app.ref=v2
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
    },
    /// Which release each host runs (the commit `current` points to) and which it keeps, with
    /// when each was switched to.
    #[command(after_help = EXIT_CODES)]
    Releases {
        env: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Only these hosts: a comma list of `host:NAME`, `role:NAME`, globs, or bare names.
        #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
        limit: Vec<String>,
    },
    /// Print a plan saved by `infra plan --out FILE` again, as it was printed then.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The saved plan.
        planfile: PathBuf,
        /// Print it as JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print the Markdown summary (as `plan --markdown`).
        #[arg(long)]
        markdown: bool,
    },
    /// Print a completion script for SHELL: `infra completions bash > /etc/bash_completion.d/infra`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write every page (infra.1, infra-plan.1, ...) into DIR:
    /// `sudo infra man --out-dir /usr/local/share/man/man1`.
    Man {
        /// Write infra.1 and a page per subcommand into DIR instead of printing infra.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
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

/// Flags shared by plan and apply.
#[derive(Debug, clap::Args)]
pub struct RunFlags {
    /// Only these hosts: a comma list of `host:NAME`, `role:NAME`, globs, or bare names.
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub limit: Vec<String>,
    /// Only the cloud section (aws inventories): machines, groups, volumes, addresses and DNS;
    /// no host is contacted.
    #[arg(long)]
    pub cloud_only: bool,
    /// How many hosts at once, within a release batch too (0 = all).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub parallel: usize,
    /// Override a variable, highest precedence: --var app.gunicorn.workers=8
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Hosts and their roles, sorted; `--by-role` for roles and their hosts.
    #[command(after_help = EXIT_CODES)]
    List {
        /// The environment; without it, every environment, one block each.
        env: Option<String>,
        /// Roles first, each with the hosts that hold it.
        #[arg(long)]
        by_role: bool,
        #[arg(long = "out", value_enum, default_value_t = RolesFormat::Text)]
        format: RolesFormat,
    },
}
