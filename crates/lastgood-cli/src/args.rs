//! The command line, as clap structs and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lastgood",
    version,
    about = "Return a running system to its last known good state, in one command",
    long_about = None,
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file (else $LASTGOOD_CONFIG, else ./lastgood.toml)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Output format for data on stdout
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not print step progress
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Answer yes to confirmations
    #[arg(long, global = true)]
    pub yes: bool,
}

/// `lastgood init --runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    Releases,
    Command,
    Gitops,
    Compose,
    Swarm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `md` is the same: `report`'s text form is Markdown.
    #[value(alias = "md")]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented lastgood.toml for the repository here
    Init {
        /// Overwrite an existing lastgood.toml
        #[arg(long)]
        force: bool,
        /// The runtime the template is written for
        #[arg(long, value_enum, default_value_t = RuntimeArg::Releases)]
        runtime: RuntimeArg,
    },
    /// Build and ship VERSION; roll back by itself when its checks fail
    Deploy {
        env: String,
        /// A tag, branch or commit in the environment's source repository
        version: String,
        #[arg(long)]
        reason: Option<String>,
        /// Skip the health checks (the release counts as good)
        #[arg(long)]
        no_verify: bool,
        /// Leave a failed release current instead of returning to the last good one
        #[arg(long)]
        no_auto_rollback: bool,
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// With the plan, print exactly the SQL its migrations would run (implies --dry-run)
        #[arg(long)]
        sql: bool,
        /// Consent to lowering the major version (involve the developers first)
        #[arg(long)]
        allow_major: bool,
        /// Watch the release this long after its checks pass (the bake window), instead
        /// of `[monitor] duration`
        #[arg(long, value_name = "DURATION", value_parser = lastgood_core::config::monitor::parse_window, conflicts_with = "no_monitor")]
        monitor: Option<std::time::Duration>,
        /// No bake window for this deploy
        #[arg(long)]
        no_monitor: bool,
        /// Refuse (exit 4) when the release a failure would return to is not ready
        #[arg(long)]
        require_ready: bool,
    },
    /// The alert-only watch after a rollback (started by lastgood itself, detached)
    #[command(hide = true)]
    Watch {
        env: String,
        #[arg(long)]
        operation: u64,
    },
    /// End the running bake window of ENV early, as passed
    Promote {
        env: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Return ENV to a known good release
    Rollback {
        env: String,
        /// last-good, previous, a release id (#3; 3 when no version is also 3),
        /// version:TEXT, a version, or a commit (7+ hex digits, source or GitOps deploy commit)
        #[arg(long, default_value = "last-good", value_name = "TARGET")]
        to: String,
        /// What to restore
        #[arg(long, value_enum, default_value_t = ScopeArg::Full)]
        scope: ScopeArg,
        #[arg(long)]
        reason: Option<String>,
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the exact SQL of the plan's migration steps and change nothing
        #[arg(long)]
        sql: bool,
        /// Consent to destructive down migrations (a backup is taken first)
        #[arg(long)]
        allow_data_loss: bool,
        /// Consent to lowering the major version (involve the developers first)
        #[arg(long)]
        allow_major: bool,
        /// While a deploy of ENV runs, exit 3 instead of asking it to stop and return
        #[arg(long)]
        no_preempt: bool,
    },
    /// Current release, last good release, lock holder, interrupted operations
    Status { env: Option<String> },
    /// Releases, newest first
    History {
        env: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// What differs between two releases: commits, config keys, migrations
    Diff {
        env: String,
        /// A release id (3 or #3), a version, last-good or previous
        from: String,
        to: String,
    },
    /// Which of code, configuration and database changed since the last good release,
    /// and the rollback scope that undoes it
    Diagnose { env: String },
    /// Run the health checks against the current release now
    Verify { env: String },
    /// Set a release's state by hand
    Mark {
        env: String,
        /// A release id (3 or #3) or a version
        release: String,
        #[arg(value_enum)]
        state: MarkState,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Restart what serves the current release (its process, its restart program, its
    /// compose services), then run the checks; brings back containers that are gone
    Restart {
        env: String,
        /// One compose service, else everything that serves
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Why: recorded in the audit log and the incident record (asked for on a terminal)
        #[arg(long)]
        reason: Option<String>,
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Finish an interrupted operation, or undo it with --abort
    Resume {
        env: String,
        #[arg(long)]
        abort: bool,
    },
    /// Hold ENV so that no operation runs until `unlock`
    Lock {
        env: String,
        #[arg(long, required = true)]
        reason: String,
    },
    /// Free ENV's lock
    Unlock {
        env: String,
        /// Also free the lock of an operation that is still running
        #[arg(long)]
        force: bool,
        /// Free only the lock granted at this epoch (`status` and `ledger status` show
        /// it); a newer grant is left alone. Needed with --force on a team ledger
        #[arg(long, value_name = "N")]
        epoch: Option<i64>,
    },
    /// The ledger itself: create a team ledger, show where it is, move to one
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The database on its own: migrations, lint, rehearsal, backups
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Delivers one spooled notification (run detached by lastgood itself)
    #[command(name = "__deliver", hide = true)]
    Deliver { file: PathBuf },
    /// Serves a fleet controller's requests on stdin (run over ssh by lastgood itself)
    #[command(name = "__agent", hide = true)]
    Agent,
    /// Runs an environment's zero-downtime proxy (started detached by lastgood itself)
    #[command(name = "__proxy", hide = true)]
    Proxy {
        state: PathBuf,
        /// The serving process itself (the keeper started without it restarts it)
        #[arg(long)]
        worker: bool,
    },
    /// The incident record of one operation (--format text gives Markdown, json a document)
    Report {
        /// The operation's id, as deploy and rollback print it
        operation: u64,
        /// Append a note to the follow-up (who and when are recorded with it), then print
        /// the record; a note ticks "incident documented"
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// The audit trail
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The dashboard and JSON API: prints a login URL with its token on stderr
    /// (LASTGOOD_SERVE_TOKEN, or one made at start); read-only unless --allow-writes
    Serve {
        /// Address to listen on (port 0 picks a free one)
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
        listen: String,
        /// The name browsers use to reach it (the Host header must match it or ADDR)
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// Allow rollbacks from the dashboard and the API
        #[arg(long)]
        allow_writes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create the PostgreSQL ledger's schema ([ledger] schema) and print the grants for
    /// the operator and viewer roles
    Init,
    /// Where the ledger is, its schema version, and each environment's lock and epoch
    Status,
    /// Move this SQLite ledger into an empty PostgreSQL ledger; the SQLite ledger then
    /// refuses writes and names the URL
    Migrate {
        /// The PostgreSQL database (URL or key=value, libpq conventions)
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Current revision, applied and pending migrations
    Status {
        env: String,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Applied migrations, newest first, with when and by whom (Alembic: its history,
    /// with which revisions are applied)
    History {
        env: String,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Apply pending migrations
    Up {
        env: String,
        /// Stop after this revision (version or full name)
        #[arg(long, value_name = "REV")]
        to: Option<String>,
        /// Print exactly the SQL that would run, bookkeeping included, and run nothing
        #[arg(long)]
        sql: bool,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Revert applied migrations
    Down {
        env: String,
        /// Revert every migration applied after this revision (`0`: all)
        #[arg(long, value_name = "REV", required_unless_present = "steps", conflicts_with = "steps")]
        to: Option<String>,
        /// Revert the newest N migrations
        #[arg(long, value_name = "N")]
        steps: Option<usize>,
        /// Print exactly the SQL that would run, bookkeeping included, and run nothing
        #[arg(long)]
        sql: bool,
        /// Consent to destructive down migrations (a backup is taken first)
        #[arg(long)]
        allow_data_loss: bool,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Classify every up and down script: safe, blocking or destructive
    Lint {
        env: String,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Prove the rollback path on scratch databases: reproduce the current schema, run
    /// the downs to REV (default: the last good release's revision), compare with a
    /// fresh apply of REV
    Rehearse {
        env: String,
        #[arg(long, value_name = "REV")]
        to: Option<String>,
        #[command(flatten)]
        dir: MigrationsDir,
    },
    /// Back up the database now (recorded in the ledger)
    Backup { env: String },
    /// Restore the database from a recorded backup (the newest by default) or a dump:
    /// stop the app, restore, start it, verify, under the lock
    Restore {
        env: String,
        /// The backup's id, from `lastgood db backups ENV`
        #[arg(long, conflicts_with = "from")]
        id: Option<u64>,
        /// A dump to restore instead: plain SQL or custom format (pg_dump), or an SQLite file
        #[arg(long, value_name = "FILE")]
        from: Option<std::path::PathBuf>,
        /// Why: recorded in the audit log and the incident record (asked for on a terminal)
        #[arg(long)]
        reason: Option<String>,
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// The recorded backups, newest first
    Backups { env: String },
}

#[derive(Debug, Args)]
pub struct MigrationsDir {
    /// Migrations folder (default: the configured one in the source's working tree)
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain
    Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Full,
    Code,
    Config,
    Db,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarkState {
    Good,
    Bad,
}
