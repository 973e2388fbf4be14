//! Structured logs through `tracing`: human-readable by default, JSON lines when
//! `log_format = "json"`; to standard error, or (for the demo) to a file.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber writing to standard error; a second call (as in
/// tests) keeps the first.
pub fn init(format: LogFormat, filter: &str) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    install(format, filter, ansi, std::io::stderr);
}

/// Installs the global subscriber appending to `file`, so a terminal stays free for
/// what a person reads.
pub fn init_file(format: LogFormat, filter: &str, file: std::fs::File) {
    install(format, filter, false, std::sync::Mutex::new(file));
}

fn install<W>(format: LogFormat, filter: &str, ansi: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
}
