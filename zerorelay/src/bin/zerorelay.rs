//! The `zerorelay` command: parses configuration and runs the relay library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use zerorelay::config::{load, Config, LogFormat};
use zerorelay::Relay;

/// Zerorelay: a WebSocket relay with acknowledgements and session resume.
///
/// Configuration comes from, in increasing precedence: built-in defaults, a
/// TOML file (--config or ZERORELAY_CONFIG), environment variables named
/// ZERORELAY_<SECTION>_<KEY> (for example ZERORELAY_LIMITS_MAX_FRAME_BYTES),
/// and flags. `zerorelay config` prints every key with its effective value.
#[derive(Parser, Debug)]
#[command(name = "zerorelay", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the relay.
    Serve(Options),
    /// Print the effective configuration as TOML and exit; with --check
    /// FILE, validate FILE (keys, schemas and certificates included) without
    /// starting.
    Config(ConfigOptions),
}

#[derive(Parser, Debug)]
struct ConfigOptions {
    #[command(flatten)]
    opts: Options,
    /// Validate this configuration file, loading every file it names (JWT
    /// keys, schemas, certificates), and exit: 0 when valid, 2 otherwise.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
}

#[derive(Parser, Debug, Clone)]
struct Options {
    /// TOML configuration file.
    #[arg(long, short, env = "ZERORELAY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (server.listen). Default 127.0.0.1:8080.
    #[arg(long, short, value_name = "ADDR")]
    listen: Option<String>,
    /// Allow development mode (no authentication) on a non-loopback address
    /// (server.insecure).
    #[arg(long)]
    insecure: bool,
    /// Log filter, e.g. info, debug, zerorelay=debug (log.level).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format (log.format).
    #[arg(long, value_enum)]
    log_format: Option<Format>,
    /// Write logs to this file instead of standard error (log.file).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Set any configuration key: --set limits.max_frame_bytes=131072.
    /// May be repeated.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Text,
    Json,
}

impl Options {
    fn load(&self) -> Result<Config, zerorelay::Error> {
        let mut sets = Vec::new();
        if let Some(l) = &self.listen {
            sets.push(format!("server.listen={l}"));
        }
        if self.insecure {
            sets.push("server.insecure=true".into());
        }
        if let Some(l) = &self.log_level {
            sets.push(format!("log.level={l}"));
        }
        if let Some(f) = self.log_format {
            sets.push(format!(
                "log.format={}",
                match f {
                    Format::Text => "text",
                    Format::Json => "json",
                }
            ));
        }
        if let Some(f) = &self.log_file {
            sets.push(format!("log.file={}", f.display()));
        }
        sets.extend(self.sets.iter().cloned());
        load::load(self.config.as_deref(), std::env::vars(), &sets)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(ConfigOptions {
        opts,
        check: Some(file),
    }) = &cli.command
    {
        return check(opts, file);
    }
    let (Command::Serve(opts) | Command::Config(ConfigOptions { opts, .. })) = &cli.command;
    let config = match opts.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerorelay: {e}");
            return ExitCode::from(2);
        }
    };
    let ignored = load::ignored_env(std::env::vars());
    if let Command::Config(_) = cli.command {
        for var in &ignored {
            eprintln!("zerorelay: ignored {var}: it names no configuration section");
        }
        print!("{}", printable(&config));
        return ExitCode::SUCCESS;
    }
    let (log, otlp) = match init_logging(&config) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("zerorelay: {e}");
            return ExitCode::from(2);
        }
    };
    for var in ignored {
        tracing::warn!(
            variable = var,
            "Ignored an environment variable with the ZERORELAY_ prefix that names no configuration section."
        );
    }
    let addr = config.listen_addr().expect("validated");
    if let Err(e) = config.check_exposure(addr, config.is_development()) {
        eprintln!("zerorelay: {e}");
        return ExitCode::from(2);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .expect("a Tokio runtime can be built");
    let reload = || opts.load();
    let served = runtime.block_on(serve(config, &reload, &log));
    // What the exporter still holds goes out before the process ends.
    if let Some(provider) = otlp {
        if let Err(e) = provider.shutdown() {
            eprintln!("zerorelay: the OTLP log export did not finish: {e}");
        }
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerorelay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration as TOML, with secrets masked: `auth.tokens` keys,
/// `auth.jwt.secret` and `api.keys` are credentials.
fn printable(config: &Config) -> String {
    let mut shown = config.clone();
    shown.auth.jwt = config.auth.jwt.masked();
    shown.api.keys = (1..=config.api.keys.len())
        .map(|i| format!("<redacted {i}>"))
        .collect();
    shown.auth.tokens = config
        .auth
        .tokens
        .values()
        .enumerate()
        .map(|(i, user)| (format!("<redacted {}>", i + 1), user.clone()))
        .collect();
    toml::to_string_pretty(&shown).expect("the config is TOML")
}

/// `zerorelay config --check FILE`: the file (with the environment and
/// flags) is loaded and a relay is built from it, which reads every file
/// it names, but nothing is bound or started.
fn check(opts: &Options, file: &std::path::Path) -> ExitCode {
    let mut opts = Options { ..opts.clone() };
    opts.config = Some(file.to_owned());
    let built = opts.load().and_then(|config| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime can be built");
        runtime.block_on(async { Relay::builder(config).build().map(drop) })
    });
    match built {
        Ok(()) => {
            println!("{}: valid", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zerorelay: {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// Swaps the log filter on a reload.
type LogHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

async fn serve(
    config: Config,
    reload: &dyn Fn() -> Result<Config, zerorelay::Error>,
    log: &LogHandle,
) -> Result<(), zerorelay::Error> {
    let relay = Relay::builder(config.clone()).build()?;
    let (bound, server) = relay.spawn().await?;
    // One line on standard output, for scripts that start the relay on port 0.
    let scheme = if relay.is_tls() { "wss" } else { "ws" };
    println!("zerorelay listening on {scheme}://{bound}/ws");
    if relay.is_development() {
        tracing::warn!("Development mode: no authentication is configured; clients name themselves with hello.user.");
    }
    let mut current = config;
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hangup() => {
                tracing::info!("SIGHUP: reloading the configuration.");
                match reload() {
                    Ok(next) => apply_reload(&relay, &mut current, next, log),
                    Err(e) => tracing::error!(error = %e, "The reloaded configuration is not valid; nothing changed."),
                }
            }
        }
    }
    tracing::info!("Shutting down: closing clients with 1001.");
    relay.shutdown().await;
    server
        .await
        .map_err(|e| zerorelay::Error::Io(std::io::Error::other(e)))??;
    tracing::info!("The relay has shut down.");
    Ok(())
}

/// Puts in force what can change without a restart ([`Relay::reload`]:
/// limits, features, auth keys and roles, schemas, the TLS certificate)
/// and the log level; a file that changes anything else (the listen
/// address, the session store, …) is refused whole, with the settings
/// named.
fn apply_reload(relay: &Relay, current: &mut Config, next: Config, log: &LogHandle) {
    let filter = if next.log.level != current.log.level {
        match tracing_subscriber::EnvFilter::try_new(&next.log.level) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(error = %e, level = next.log.level, "The reloaded log.level is not a valid filter; nothing changed.");
                return;
            }
        }
    } else {
        None
    };
    match relay.reload(&next) {
        Ok(changed) => {
            if let Some(f) = filter {
                if let Err(e) = log.reload(f) {
                    tracing::error!(error = %e, "The log level could not be changed.");
                }
                tracing::info!(level = next.log.level, "Changed the log level.");
            }
            tracing::info!(
                ?changed,
                "Reloaded the configuration; open connections keep running under it."
            );
            *current = next;
        }
        Err(e) => {
            tracing::error!(error = %e, "The reloaded configuration was refused; nothing changed.");
        }
    }
}

/// Resolves at each SIGHUP (never on platforms without it).
async fn hangup() {
    #[cfg(unix)]
    {
        use std::sync::OnceLock;
        // One signal stream for the process, so no SIGHUP between two
        // waits is lost.
        static HUP: OnceLock<tokio::sync::Mutex<tokio::signal::unix::Signal>> = OnceLock::new();
        let hup = HUP.get_or_init(|| {
            tokio::sync::Mutex::new(
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                    .expect("SIGHUP can be handled"),
            )
        });
        hup.lock().await.recv().await;
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM can be handled");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The `[log.otlp]` export: a batch exporter of OTLP/HTTP protobuf to
/// `<endpoint>/v1/logs`, on a thread of its own.
fn otlp_provider(
    c: &zerorelay::config::OtlpConfig,
) -> Result<Option<opentelemetry_sdk::logs::SdkLoggerProvider>, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let Some(endpoint) = &c.endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/logs", endpoint.trim_end_matches('/')))
        .with_timeout(std::time::Duration::from_millis(c.timeout_ms))
        .with_headers(Default::default())
        .build()
        .map_err(|e| format!("`log.otlp`: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(c.service_name.clone())
        .build();
    Ok(Some(
        opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

fn init_logging(
    config: &Config,
) -> Result<
    (
        LogHandle,
        Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    ),
    String,
> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{filter, fmt, reload, EnvFilter};
    let level = EnvFilter::try_new(&config.log.level).map_err(|e| {
        format!(
            "`log.level` {:?} is not a valid filter: {e}",
            config.log.level
        )
    })?;
    let (level, handle) = reload::Layer::new(level);
    let provider = otlp_provider(&config.log.otlp)?;
    // Only the relay's own events: the exporter's HTTP client logs too, and
    // exporting those would feed the exporter its own output.
    let otlp = provider.as_ref().map(|p| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(p)
            .with_filter(filter::filter_fn(|m| m.target().starts_with("zerorelay")))
    });
    let registry = tracing_subscriber::registry().with(level).with(otlp);
    match (&config.log.file, config.log.format) {
        (None, LogFormat::Text) => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init(),
        (None, LogFormat::Json) => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init(),
        (Some(path), format) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log.file {path}: {e}"))?;
            let writer = std::sync::Mutex::new(file);
            match format {
                LogFormat::Text => registry
                    .with(fmt::layer().with_ansi(false).with_writer(writer))
                    .init(),
                LogFormat::Json => registry
                    .with(fmt::layer().json().with_writer(writer))
                    .init(),
            }
        }
    }
    Ok((handle, provider))
}
