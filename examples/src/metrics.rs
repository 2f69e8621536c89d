//! The examples' `GET /metrics`: what hubs records (see [`hubs::meters`]) in the
//! Prometheus text format, through the `metrics-exporter-prometheus` recorder.
//!
//! Install the recorder once per process, at start-up, before the server is built:
//!
//! ```no_run
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let handle = hubs_examples::metrics::install()?;
//! let app: axum::Router = axum::Router::new().merge(hubs_examples::metrics::router(handle));
//! # let _ = app; Ok(()) }
//! ```

use axum::http::header;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for durations, in seconds: from half a millisecond to an hour.
const SECONDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 600.0,
    3600.0,
];

/// Buckets for the outbound queue depth, in frames.
const FRAMES: [f64; 8] = [0.0, 1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 1024.0];

/// How often the recorder's upkeep runs.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process's Prometheus recorder, with histograms (not summaries) for hubs'
/// durations and queue depths, and describes hubs' metrics to it.
///
/// It also starts a thread that runs the recorder's upkeep every 5 s. Without it, every
/// histogram sample is kept until the next scrape: a server nobody scrapes grows by a
/// few bytes per invocation and connection, for ever (found by the churn test,
/// `tests/tests/floods.rs`).
///
/// # Errors
///
/// When a recorder is already installed.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS)?
        .set_buckets_for_metric(
            Matcher::Full(hubs::meters::names::OUTBOUND_QUEUE_DEPTH.to_owned()),
            &FRAMES,
        )?
        .install_recorder()?;
    hubs::meters::describe();
    let upkeep = handle.clone();
    // A thread, not a task: the recorder may be installed before any runtime starts.
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            }
        })
        .map_err(|error| BuildError::FailedToCreateRuntime(format!("upkeep thread: {error}")))?;
    Ok(handle)
}

/// `GET /metrics`, answered from `handle`.
pub fn router<S: Clone + Send + Sync + 'static>(handle: PrometheusHandle) -> axum::Router<S> {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}
