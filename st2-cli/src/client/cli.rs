//! The `st2` command line: StackStorm's command names and flags (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::config::ConnArgs;

/// st2: command-line client of the st2 platform (StackStorm-compatible).
#[derive(Debug, Parser)]
#[command(name = "st2", version)]
pub struct Cli {
    /// Connection and credentials.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print JSON.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// Print YAML.
    #[arg(short = 'y', long, global = true, conflicts_with = "json")]
    pub yaml: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get a token for a user.
    Auth(AuthArgs),
    /// Log in: get a token, cache it and write the user into the config file.
    Login(LoginArgs),
    /// Show who is logged in.
    Whoami,
    /// API keys.
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Actions.
    #[command(subcommand)]
    Action(ActionCmd),
    /// Run an action and wait for its result.
    Run(RunArgs),
    /// Executions.
    #[command(subcommand)]
    Execution(ExecutionCmd),
    /// Rules.
    #[command(subcommand)]
    Rule(RuleCmd),
    /// Trigger types.
    #[command(subcommand)]
    Trigger(TriggerCmd),
    /// Sensors.
    #[command(subcommand)]
    Sensor(SensorCmd),
    /// Trigger instances.
    #[command(subcommand, name = "trigger-instance")]
    TriggerInstance(TriggerInstanceCmd),
    /// Rule enforcements.
    #[command(subcommand, name = "rule-enforcement")]
    RuleEnforcement(RuleEnforcementCmd),
    /// Webhooks.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Traces.
    #[command(subcommand)]
    Trace(TraceCmd),
    /// Inquiries.
    #[command(subcommand)]
    Inquiry(InquiryCmd),
    /// Key-value pairs of the datastore.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Packs.
    #[command(subcommand)]
    Pack(PackCmd),
}

/// `st2 auth USER [-p PW] [-t] [-l TTL]`.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// User name.
    pub username: String,
    /// Password (asked on the terminal when missing).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Print only the token.
    #[arg(short = 't', long = "only-token")]
    pub only_token: bool,
    /// Token lifetime in seconds.
    #[arg(short = 'l', long)]
    pub ttl: Option<u64>,
}

/// `st2 login USER [-p PW] [-l TTL] [-w]`.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// User name.
    pub username: String,
    /// Password (asked on the terminal when missing).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Token lifetime in seconds.
    #[arg(short = 'l', long)]
    pub ttl: Option<u64>,
    /// Also write the password into the config file.
    #[arg(short = 'w', long)]
    pub write_password: bool,
}

/// `st2 apikey ...`.
#[derive(Debug, Subcommand)]
pub enum ApikeyCmd {
    /// Create an API key.
    Create {
        /// Print only the key.
        #[arg(short = 'k', long = "only-key")]
        only_key: bool,
        /// Metadata as JSON.
        #[arg(short, long)]
        metadata: Option<String>,
        /// Owner (admin only).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// List API keys.
    List {
        /// Only this user's keys.
        #[arg(short, long)]
        user: Option<String>,
        /// Show the keys themselves.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Show one API key.
    Get {
        /// Key id.
        id: String,
    },
    /// Delete an API key.
    Delete {
        /// Key id.
        id: String,
    },
    /// Enable an API key.
    Enable {
        /// Key id.
        id: String,
    },
    /// Disable an API key.
    Disable {
        /// Key id.
        id: String,
    },
}

/// `st2 action ...`.
#[derive(Debug, Subcommand)]
pub enum ActionCmd {
    /// List actions.
    List {
        /// Only this pack's actions.
        #[arg(short, long)]
        pack: Option<String>,
    },
    /// Show one action (ref or id).
    Get {
        /// Action ref or id.
        ref_or_id: String,
    },
    /// Start an action without waiting (like `run -a`).
    Execute(RunArgs),
}

/// `st2 run REF k=v... [-a] [--trace-tag T] [-u USER] [--delay MS]`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Action ref or id.
    pub ref_or_id: String,
    /// Parameters as `name=value` (cast by the parameter types); words without `=` become `cmd`.
    pub parameters: Vec<String>,
    /// Do not wait for the result.
    #[arg(short = 'a', long = "async")]
    pub run_async: bool,
    /// Trace tag of the execution.
    #[arg(long)]
    pub trace_tag: Option<String>,
    /// Existing trace to join.
    #[arg(long)]
    pub trace_id: Option<String>,
    /// Run as this user (admin only).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Delay before scheduling, in milliseconds.
    #[arg(long)]
    pub delay: Option<u64>,
}

/// `st2 execution ...`.
#[derive(Debug, Subcommand)]
pub enum ExecutionCmd {
    /// List executions, newest last.
    List(ExecutionListArgs),
    /// Show one execution.
    Get {
        /// Execution id.
        id: String,
        /// Show all fields of the execution.
        #[arg(short, long)]
        detail: bool,
        /// Leave the result out.
        #[arg(short = 'x', long)]
        hide_result: bool,
    },
    /// Follow an execution's output (`last`: the newest execution).
    Tail {
        /// Execution id or `last`.
        #[arg(default_value = "last")]
        id: String,
        /// Only this output type (stdout or stderr).
        #[arg(long = "type")]
        output_type: Option<String>,
        /// Print the metadata of each output chunk.
        #[arg(long)]
        include_metadata: bool,
    },
    /// Cancel executions.
    Cancel {
        /// Execution ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run an execution's action again, optionally with other parameters.
    #[command(name = "re-run")]
    ReRun {
        /// Execution id.
        id: String,
        /// Parameters to override, `name=value`.
        parameters: Vec<String>,
        /// Workflow tasks to re-run.
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Tasks whose state is reset.
        #[arg(long, value_delimiter = ',')]
        no_reset: Vec<String>,
        /// Do not wait for the result.
        #[arg(short = 'a', long = "async")]
        run_async: bool,
        /// Delay before scheduling, in milliseconds.
        #[arg(long)]
        delay: Option<u64>,
    },
    /// Pause a workflow execution.
    Pause {
        /// Execution ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Resume a paused workflow execution.
    Resume {
        /// Execution ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// `st2 execution list` filters.
#[derive(Debug, Clone, Args)]
pub struct ExecutionListArgs {
    /// How many to show.
    #[arg(short = 'n', long = "last", default_value_t = 50)]
    pub last: u64,
    /// Only this action.
    #[arg(long)]
    pub action: Option<String>,
    /// Only this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Only this user's.
    #[arg(long)]
    pub user: Option<String>,
    /// Only those of this trigger instance.
    #[arg(long = "trigger_instance", alias = "trigger-instance")]
    pub trigger_instance: Option<String>,
    /// Include workflow children.
    #[arg(short = 'l', long)]
    pub showall: bool,
    /// Only those started after this time.
    #[arg(long = "timestamp-gt", visible_alias = "tg")]
    pub timestamp_gt: Option<String>,
    /// Only those started before this time.
    #[arg(long = "timestamp-lt", visible_alias = "tl")]
    pub timestamp_lt: Option<String>,
    /// Sort order (asc or desc).
    #[arg(short = 's', long = "sort", default_value = "desc")]
    pub sort: String,
}

/// `st2 rule ...`.
#[derive(Debug, Subcommand)]
pub enum RuleCmd {
    /// List rules.
    List {
        /// How many to show.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        /// Only this pack's rules.
        #[arg(short, long)]
        pack: Option<String>,
        /// Only rules running this action.
        #[arg(short = 'c', long)]
        action: Option<String>,
        /// Only rules on this trigger.
        #[arg(short = 'g', long)]
        trigger: Option<String>,
        /// Only enabled rules.
        #[arg(long, conflicts_with = "disabled")]
        enabled: bool,
        /// Only disabled rules.
        #[arg(long)]
        disabled: bool,
        /// Show trigger and action instead of the description.
        #[arg(long)]
        iftt: bool,
    },
    /// Show one rule (ref or id).
    Get {
        /// Rule ref or id.
        ref_or_id: String,
    },
    /// Create a rule from a YAML or JSON file.
    Create {
        /// Rule definition file.
        file: PathBuf,
    },
    /// Replace a rule with a YAML or JSON file.
    Update {
        /// Rule ref or id.
        ref_or_id: String,
        /// Rule definition file.
        file: PathBuf,
    },
    /// Delete a rule.
    Delete {
        /// Rule ref or id.
        ref_or_id: String,
    },
    /// Enable a rule.
    Enable {
        /// Rule ref or id.
        ref_or_id: String,
    },
    /// Disable a rule.
    Disable {
        /// Rule ref or id.
        ref_or_id: String,
    },
}

/// `st2 trigger ...` (trigger types).
#[derive(Debug, Subcommand)]
pub enum TriggerCmd {
    /// List trigger types.
    List {
        /// Only this pack's.
        #[arg(short, long)]
        pack: Option<String>,
    },
    /// Show one trigger type.
    Get {
        /// Trigger type ref or id.
        ref_or_id: String,
    },
}

/// `st2 sensor ...`.
#[derive(Debug, Subcommand)]
pub enum SensorCmd {
    /// List sensors.
    List {
        /// Only this pack's.
        #[arg(short, long)]
        pack: Option<String>,
    },
    /// Show one sensor.
    Get {
        /// Sensor ref or id.
        ref_or_id: String,
    },
    /// Enable a sensor (the sensor container starts it).
    Enable {
        /// Sensor ref or id.
        ref_or_id: String,
    },
    /// Disable a sensor (the sensor container stops it).
    Disable {
        /// Sensor ref or id.
        ref_or_id: String,
    },
}

/// `st2 trigger-instance ...`.
#[derive(Debug, Subcommand)]
pub enum TriggerInstanceCmd {
    /// List trigger instances.
    List {
        /// How many to show.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        /// Only this trigger's.
        #[arg(long)]
        trigger: Option<String>,
    },
    /// Show one trigger instance.
    Get {
        /// Trigger instance id.
        id: String,
    },
    /// Emit a trigger instance again.
    #[command(name = "re-emit")]
    ReEmit {
        /// Trigger instance id.
        id: String,
    },
}

/// `st2 rule-enforcement ...`.
#[derive(Debug, Subcommand)]
pub enum RuleEnforcementCmd {
    /// List rule enforcements.
    List {
        /// How many to show.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        /// Only this rule's.
        #[arg(long)]
        rule: Option<String>,
        /// Only those of this trigger instance.
        #[arg(long)]
        trigger_instance: Option<String>,
        /// Only those that started this execution.
        #[arg(long)]
        execution: Option<String>,
    },
    /// Show one rule enforcement.
    Get {
        /// Enforcement id.
        id: String,
    },
}

/// `st2 webhook ...`.
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// List webhooks.
    List,
    /// Show one webhook.
    Get {
        /// Webhook url.
        url: String,
    },
}

/// `st2 trace ...`.
#[derive(Debug, Subcommand)]
pub enum TraceCmd {
    /// List traces.
    List {
        /// How many to show.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
        /// Only traces with this tag.
        #[arg(short = 'c', long)]
        trace_tag: Option<String>,
        /// Only the trace of this execution.
        #[arg(short = 'e', long)]
        execution: Option<String>,
        /// Only traces of this rule.
        #[arg(short = 'r', long)]
        rule: Option<String>,
        /// Only the trace of this trigger instance.
        #[arg(short = 'g', long)]
        trigger_instance: Option<String>,
    },
    /// Show one trace.
    Get {
        /// Trace id.
        id: String,
    },
}

/// `st2 inquiry ...`.
#[derive(Debug, Subcommand)]
pub enum InquiryCmd {
    /// List inquiries waiting for a response.
    List {
        /// How many to show.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
    },
    /// Show one inquiry.
    Get {
        /// Inquiry id.
        id: String,
    },
    /// Respond to an inquiry.
    Respond {
        /// Inquiry id.
        id: String,
        /// The response as JSON.
        #[arg(short, long)]
        response: String,
    },
}

/// `st2 key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List key-value pairs.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Decrypt secrets.
        #[arg(short, long)]
        decrypt: bool,
        /// Scope: system, user or all.
        #[arg(short, long, default_value = "all")]
        scope: String,
        /// Another user's keys (admin only).
        #[arg(short, long)]
        user: Option<String>,
        /// How many to show.
        #[arg(short = 'n', long = "last", default_value_t = 50)]
        last: u64,
    },
    /// Show one key-value pair.
    Get {
        /// Key name.
        name: String,
        /// Decrypt a secret.
        #[arg(short, long)]
        decrypt: bool,
        /// Scope: system or user.
        #[arg(short, long, default_value = "system")]
        scope: String,
        /// Another user's key (admin only).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Set a key-value pair.
    Set {
        /// Key name.
        name: String,
        /// Value.
        value: String,
        /// Encrypt the value on the server.
        #[arg(short = 'e', long)]
        encrypt: bool,
        /// The value is already encrypted.
        #[arg(long)]
        encrypted: bool,
        /// Lifetime in seconds.
        #[arg(short = 'l', long)]
        ttl: Option<u64>,
        /// Scope: system or user.
        #[arg(short, long, default_value = "system")]
        scope: String,
        /// Another user's key (admin only).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Delete a key-value pair.
    Delete {
        /// Key name.
        name: String,
        /// Scope: system or user.
        #[arg(short, long, default_value = "system")]
        scope: String,
        /// Another user's key (admin only).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Delete every key whose name starts with a prefix.
    #[command(name = "delete_by_prefix")]
    DeleteByPrefix {
        /// Name prefix.
        #[arg(short, long)]
        prefix: String,
        /// Scope: system or user.
        #[arg(short, long, default_value = "system")]
        scope: String,
    },
    /// Load key-value pairs from a JSON or YAML file (one object or a list).
    Load {
        /// The file.
        file: PathBuf,
        /// Store non-string values as JSON text.
        #[arg(short, long)]
        convert: bool,
    },
}

/// `st2 pack ...`.
#[derive(Debug, Subcommand)]
pub enum PackCmd {
    /// List installed packs.
    List,
    /// Show an installed pack.
    Get {
        /// Pack ref.
        pack: String,
    },
    /// Install packs (names, git urls, `name=version`) and wait for the result.
    Install {
        /// Packs to install.
        #[arg(required = true)]
        packs: Vec<String>,
        /// Reinstall even when already installed.
        #[arg(long)]
        force: bool,
        /// Do not install dependencies.
        #[arg(long)]
        skip_dependencies: bool,
    },
    /// Remove packs and wait for the result.
    Remove {
        /// Packs to remove.
        #[arg(required = true)]
        packs: Vec<String>,
    },
    /// Register the content of installed packs.
    Register {
        /// Packs (all when none).
        packs: Vec<String>,
        /// Content types (all when none).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
    },
    /// Search the pack index.
    Search {
        /// Query.
        query: String,
    },
    /// Show a pack of the index.
    Show {
        /// Pack name.
        pack: String,
    },
    /// Configure a pack interactively from its config schema.
    Config {
        /// Pack name.
        pack: String,
    },
}
