//! The command line: the clap definitions (this file), [`run`], which hands
//! each command to its file, and one file per command group. Each group's
//! file both does the work and renders the answer; the rendering they share
//! (`--json`, tables, cells, the `error:` line and exit code of a failed call)
//! is in `render.rs`, and the HTTP client that talks to a running gateway in
//! `client.rs`.
//!
//! Nothing outside this folder imports `cli`: the gateway is a library the
//! command line drives, never the other way round. The bytes it prints and
//! its exit codes are an interface (scripts read them), kept by
//! `tests/it/cli.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod client;
mod config;
mod datasets;
mod eval;
mod events;
mod feedback;
mod interactions;
mod keys;
mod mock;
mod models;
mod privacy;
mod render;
mod rollout;
mod serve;

/// The operation failed: the gateway answered with an error, or serving
/// stopped on one.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// The gateway could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Runs one command to its end and returns the process's exit code. `main`
/// provides the runtime: `serve` expects a current-thread one (its
/// connections run on shard threads of their own), the others any.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Config(args) => config::run(args),
        Command::Interactions(cmd) => interactions::run(cmd).await,
        Command::Feedback(cmd) => feedback::run(cmd).await,
        Command::Privacy(cmd) => privacy::run(cmd).await,
        Command::Datasets(cmd) => datasets::run(cmd).await,
        Command::Eval(cmd) => eval::run(cmd).await,
        Command::Models(cmd) => models::run(cmd).await,
        Command::Rollout(cmd) => rollout::run(cmd).await,
        Command::Events {
            gateway,
            limit,
            kind,
        } => events::run(gateway, limit, kind).await,
        Command::Keys(cmd) => keys::run(cmd),
        Command::MockUpstream { listen } => mock::run(listen).await,
    }
}

/// Flywheel: an OpenAI-compatible gateway that records every call so production
/// traffic can become better models.
///
/// Point your app's OpenAI base URL at the gateway (e.g.
/// OPENAI_BASE_URL=http://127.0.0.1:8080/v1); everything else stays the same.
///
/// Exit codes: 0 success; 1 the operation failed (the gateway answered with an
/// error, or serving stopped on an error); 2 bad usage or configuration; 3 the
/// gateway could not be reached.
#[derive(Debug, Parser)]
#[command(name = "flywheel", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    ///
    /// Zero-config: `flywheel serve --upstream http://127.0.0.1:9000/v1` forwards
    /// every request to that upstream and records it in ./flywheel.db. Settings
    /// come from --config (TOML), then FLYWHEEL_<SECTION>_<KEY> environment
    /// variables (e.g. FLYWHEEL_UPSTREAM_URL), then these flags. The admin API is
    /// on when FLYWHEEL_ADMIN_TOKEN is set. SIGTERM drains in-flight requests and
    /// the capture queue before exit.
    Serve(ServeArgs),
    /// Check a configuration without starting: print the effective settings or
    /// say which key is wrong and how to fix it.
    Config(ServeArgs),
    /// Read captured interactions from a running gateway.
    #[command(subcommand)]
    Interactions(InteractionsCommand),
    /// Send or list feedback on interactions.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// Routes and model versions: list, register, approve, reject.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Canary rollouts: start, watch, pause, resume, set the weight, promote, abort.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Training datasets from captured traffic and feedback: build, list,
    /// show, diff, export.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Evaluations: replay a dataset's eval split to a candidate and the
    /// stable version, score both, and let the route's gate decide; list and
    /// show the experiments.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Privacy actions: erase a user's data, sweep expired data.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Read the audit log (operator actions, raw-payload reads, retention sweeps).
    Events {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// How many to show (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this kind, e.g. raw_payload_read, user_forgotten, retention_purge.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Client-key helpers.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a mock OpenAI-compatible upstream (for tests, benchmarks and demos).
    ///
    /// Behaviour is chosen per request with the `x-mock` header or a model named
    /// `mock:<directives>`, e.g. `status=500`, `delay_ms=200`, `chunks=20`,
    /// `chunk_delay_ms=5`, `disconnect_after=3`, `no_usage`, `hang`.
    MockUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// TOML config file (see config/flywheel.toml for every key, with defaults).
    #[arg(long, short = 'c', env = "FLYWHEEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<String>,
    /// Upstream base URL, including /v1 (e.g. http://127.0.0.1:9000/v1).
    #[arg(long)]
    pub upstream: Option<String>,
    /// SQLite database file for captures [default: ./flywheel.db].
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// PEM certificate chain: serve TLS (HTTP/1.1 and HTTP/2 by ALPN).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Where the CLI finds a running gateway.
#[derive(Debug, Args, Clone)]
pub struct GatewayArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "FLYWHEEL_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Admin token (prefer the environment variable to keep it out of shell history).
    #[arg(
        long,
        env = "FLYWHEEL_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum InteractionsCommand {
    /// List interactions, newest first.
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// How many to show (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show interactions older than this id (the `next_before` of the previous page).
        #[arg(long)]
        before: Option<String>,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only this user segment.
        #[arg(long)]
        segment: Option<String>,
    },
    /// Show one interaction with its request and response.
    Show {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Interaction id (from the x-flywheel-interaction-id header).
        id: String,
        /// Show the unredacted payload instead (needs privacy.keep_raw; the read is audited).
        #[arg(long)]
        raw: bool,
    },
    /// Totals: interactions, outcomes, routes, tokens, capture queue.
    Stats {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the SHA-256 of a client key, for `[[auth.keys]] sha256` in the config.
    ///
    /// Reads the key from standard input when KEY is omitted, so it stays out of
    /// shell history: `printf %s "$KEY" | flywheel keys hash`.
    Hash {
        /// The key; omit to read it from standard input.
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// List feedback, newest first (admin API).
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// How many to show (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only feedback since this time: RFC 3339, a date, unix seconds, or an age (30m, 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only this type: thumbs, rating, correction, comment, outcome.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Show feedback older than this id (the `next_before` of the previous page).
        #[arg(long)]
        before: Option<String>,
    },
    /// Send feedback on an interaction (POST /v1/feedback), exactly one kind per call.
    ///
    /// Examples: `flywheel feedback send ID --thumbs up`,
    /// `flywheel feedback send ID --rating 4 --scale 1,5`,
    /// `flywheel feedback send ID --correction "the right answer"`.
    Send {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The interaction id (from the x-flywheel-interaction-id header).
        interaction_id: String,
        /// Thumbs: up or down.
        #[arg(long, group = "kind", value_parser = ["up", "down"])]
        thumbs: Option<String>,
        /// A rating on --scale.
        #[arg(long, group = "kind", allow_negative_numbers = true)]
        rating: Option<f64>,
        /// The rating's scale as MIN,MAX [default: 1,5].
        #[arg(long, requires = "rating", value_delimiter = ',')]
        scale: Option<Vec<f64>>,
        /// The right output, replacing the model's answer in training data.
        #[arg(long, group = "kind")]
        correction: Option<String>,
        /// A free-text comment.
        #[arg(long, group = "kind")]
        comment: Option<String>,
        /// Whether the user's task succeeded: true or false.
        #[arg(long, group = "kind")]
        outcome: Option<bool>,
        /// The end user's id (stored only as a keyed hash).
        #[arg(long)]
        user: Option<String>,
        /// Makes retries safe: the same key answers the same feedback id.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Client key, when the gateway requires one.
        #[arg(long, env = "FLYWHEEL_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Build a new dataset version from the gateway's store and print its id,
    /// content hash and counts.
    ///
    /// The selection comes from a spec file (TOML; see config/curate.toml for
    /// every key) and/or the flags below, which override the file. Progress
    /// (rows scanned, kept, rate, ETA) goes to stderr; Ctrl-C cancels the build
    /// and leaves no version behind. A spec that selects nothing creates no
    /// version and says which filter emptied it (exit code 1). Building the same
    /// resolved spec (relative times such as 7d resolve to dates) over the same
    /// data gives the same id and content hash.
    ///
    /// Example: flywheel datasets build --route support-bot --since 7d --thumbs-up --out ./data
    Build(Box<DatasetBuildArgs>),
    /// Dataset versions, newest first.
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Only datasets built for this route.
        #[arg(long)]
        route: Option<String>,
        /// How many to show (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print a dataset's manifest: spec, counts per stage (what each filter
    /// removed), files with sha256, lineage (model versions, parent), created
    /// at and by.
    Show {
        #[command(flatten)]
        gateway: GatewayArgs,
        id: String,
        /// Also print every interaction it came from (id, version, split, role).
        #[arg(long)]
        ids: bool,
    },
    /// Compare two dataset versions: spec keys, counts, and which interactions
    /// were added or dropped.
    Diff {
        #[command(flatten)]
        gateway: GatewayArgs,
        a: String,
        b: String,
    },
    /// Download a dataset's files in one format into a directory, checking each
    /// file's sha256 against the manifest. The manifest is copied beside them.
    Export {
        #[command(flatten)]
        gateway: GatewayArgs,
        id: String,
        /// sft (OpenAI chat fine-tuning), dpo (OpenAI preference), dpo-trl (TRL
        /// prompt/chosen/rejected) or kto (TRL prompt/completion/label).
        #[arg(long)]
        format: String,
        /// Which split: train, eval (a held-out set for evaluation) or all.
        #[arg(long, default_value = "all")]
        split: String,
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct DatasetBuildArgs {
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Spec file (TOML). Flags below override its keys.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Only this route.
    #[arg(long)]
    pub route: Option<String>,
    /// Only calls that asked for this model (the request's `model`, exactly).
    #[arg(long)]
    pub model: Option<String>,
    /// Only calls of this user segment (x-flywheel-segment or the key's segment).
    #[arg(long)]
    pub segment: Option<String>,
    /// Only these model versions (repeat the flag for several).
    #[arg(long = "version")]
    pub versions: Vec<String>,
    /// Start of the time window: an age (7d, 24h), a date or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the time window (exclusive), same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Keep only interactions with a thumbs-up.
    #[arg(long)]
    pub thumbs_up: bool,
    /// Keep only interactions with a correction.
    #[arg(long)]
    pub corrected: bool,
    /// Drop interactions with a thumbs-down.
    #[arg(long)]
    pub no_thumbs_down: bool,
    /// Keep only interactions whose mean rating (0..1 scale) is at least this.
    #[arg(long)]
    pub min_rating: Option<f64>,
    /// Keep only interactions whose task outcome was reported true.
    #[arg(long)]
    pub outcome_true: bool,
    /// Keep only interactions whose quality score (0..1) is at least this.
    #[arg(long)]
    pub min_quality: Option<f64>,
    /// Drop answers that open with a refusal.
    #[arg(long)]
    pub drop_refusals: bool,
    /// Near-duplicate threshold (estimated Jaccard of the user turns' 3-word shingles, 0.5..1).
    #[arg(long)]
    pub near_threshold: Option<f64>,
    /// Share of prompts held out for eval (0..0.5).
    #[arg(long)]
    pub eval_ratio: Option<f64>,
    /// Exact number of examples held out for eval (overrides --eval-ratio).
    #[arg(long)]
    pub eval_size: Option<usize>,
    /// Formats to write, comma-separated: sft, dpo, dpo-trl, kto.
    #[arg(long, value_delimiter = ',')]
    pub emit: Vec<String>,
    /// The dataset this one derives from (default: the newest for the route).
    #[arg(long)]
    pub parent: Option<String>,
    /// After building, export every emitted format into this directory
    /// (checked to be writable before the build starts).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Delete everything tied to one end user (right to erasure): their
    /// interactions, those interactions' feedback and raw payloads, and the
    /// feedback they gave. Prints how many records were removed.
    Forget {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The user's id exactly as the app sends it (`user` field or x-flywheel-user).
        #[arg(long)]
        user: String,
    },
    /// Delete what has outlived the retention settings now (the gateway also
    /// does this on its own every retention.interval_secs).
    Purge {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Routes with their versions, states and traffic shares.
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// One version: its state and why (the last transition's reason and the
    /// latest evaluation gate verdict, check by check), and its history.
    Show {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The route, e.g. support-bot.
        route: String,
        /// The version, e.g. v2.
        version: String,
    },
    /// Register a new version of a route (state `registered`; a new route's
    /// first version becomes stable).
    Register {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The route (the model name apps send), e.g. support-bot.
        #[arg(long)]
        route: String,
        /// The new version's name, e.g. v2.
        #[arg(long)]
        version: String,
        /// The version's upstream base URL, including /v1.
        #[arg(long)]
        upstream: String,
        /// The upstream's own model name (replaces `model` in requests).
        #[arg(long)]
        upstream_model: Option<String>,
        /// Environment variable (on the gateway) holding this upstream's API key.
        #[arg(long)]
        api_key_env: Option<String>,
        /// A system message prepended to chat requests served by this version.
        #[arg(long)]
        system_prompt: Option<String>,
        /// Why it is registered (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Approve a version so it may take live traffic.
    Approve {
        #[command(flatten)]
        gateway: GatewayArgs,
        #[arg(long)]
        route: String,
        #[arg(long)]
        version: String,
        /// Why (required; kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Reject a version.
    Reject {
        #[command(flatten)]
        gateway: GatewayArgs,
        #[arg(long)]
        route: String,
        #[arg(long)]
        version: String,
        /// Why (required; kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a canary rollout of an approved version against the route's stable one.
    ///
    /// The plan (TOML) lists steps and thresholds, e.g.
    ///   [[steps]]
    ///   weight_percent = 5
    ///   min_duration_secs = 600
    ///   min_requests = 100
    ///   max_error_rate_increase = 0.02   # top level: thresholds
    /// Without --plan: 5% -> 25% -> 50% -> 100%, each 10 minutes and 100 requests.
    Start {
        #[command(flatten)]
        gateway: GatewayArgs,
        #[arg(long)]
        route: String,
        #[arg(long)]
        version: String,
        /// Plan file (TOML).
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Roll out a version the evaluation gate last rejected, for this
        /// reason (recorded in the audit log).
        #[arg(long, value_name = "REASON")]
        override_gate: Option<String>,
    },
    /// Show rollouts with the live comparison of canary and stable.
    Status {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// One rollout, by id or by its route's name; default: every active one.
        id: Option<String>,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
    },
    /// Pause the automatic plan (the weight stays).
    Pause {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The rollout's id, or its route's name (a route has one active rollout).
        id: String,
    },
    /// Resume the plan; the current step's hold starts again.
    Resume {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The rollout's id, or its route's name (a route has one active rollout).
        id: String,
    },
    /// Set the canary's share by hand (pauses the plan).
    SetWeight {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The rollout's id, or its route's name (a route has one active rollout).
        id: String,
        /// Percent of the route's traffic, 0 to 100.
        weight_percent: f64,
    },
    /// Promote the canary to stable now (the old stable retires).
    Promote {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The rollout's id, or its route's name (a route has one active rollout).
        id: String,
    },
    /// Stop the rollout and take the canary out of traffic.
    Abort {
        #[command(flatten)]
        gateway: GatewayArgs,
        /// The rollout's id, or its route's name (a route has one active rollout).
        id: String,
        /// Why (kept in the audit log).
        #[arg(long, default_value = "aborted by operator")]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Run an evaluation: every example of the dataset's split is sent to
    /// the candidate and the baseline, each answer scored with the route's
    /// [[routes.scorers]], and the route's [routes.gate] gives its verdict
    /// (in auto mode it approves or rejects the candidate). Shows progress
    /// with rate and ETA on stderr; Ctrl-C cancels the run. Exit code 1 when
    /// the gate rejects the candidate.
    Run {
        #[command(flatten)]
        gateway: GatewayArgs,
        #[arg(long)]
        route: String,
        /// The version under evaluation, e.g. v2.
        #[arg(long)]
        candidate: String,
        /// What it is compared with; default: the route's stable version.
        #[arg(long)]
        baseline: Option<String>,
        /// The dataset version whose examples are replayed.
        #[arg(long)]
        dataset: String,
        /// `eval` or `train`.
        #[arg(long, default_value = "eval")]
        split: String,
        /// At most this many examples.
        #[arg(long)]
        limit: Option<usize>,
        /// Examples in flight at once (1 to 256).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// The bootstrap's seed: the same outputs and seed give the same numbers.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Experiments, newest first.
    List {
        #[command(flatten)]
        gateway: GatewayArgs,
        #[arg(long)]
        route: Option<String>,
        /// Only experiments of this candidate version.
        #[arg(long)]
        candidate: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One experiment: its versions, scores with intervals, and verdict.
    Show {
        #[command(flatten)]
        gateway: GatewayArgs,
        id: String,
    },
    /// Two experiments side by side: each scorer's candidate and baseline
    /// means and difference, each side's errors and p95, and the verdicts.
    Compare {
        #[command(flatten)]
        gateway: GatewayArgs,
        a: String,
        b: String,
    },
}
