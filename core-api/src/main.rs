//! `core-api` server binary: loads configuration, starts serving at once (`/healthz` live,
//! `/readyz` not ready), loads the model and the index, then turns ready.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::Arc;

use core_api::cluster::ShardNode;
use core_api::config::Role;
use core_api::metrics::Metrics;
use core_api::{app, AppState, Config};
use tracing_subscriber::EnvFilter;

fn config_path() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var_os("RECO_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a path")?.into()),
            "--help" | "-h" => {
                println!(
                    "usage: core-api [--config FILE]\n       core-api keygen --id NAME --scopes \
                     SCOPE[,SCOPE...]\n\nEnvironment overrides: RECO__SECTION__KEY=value (see \
                     docs/operating.md). Scopes: catalog:write, events:write, admin:read, \
                     admin:write."
                );
                std::process::exit(0);
            }
            "keygen" => {
                keygen(args.by_ref())?;
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    Ok(path)
}

/// Prints a new operator key once, and the `auth.operator_keys` entry holding its digest.
fn keygen(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut id, mut scopes) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--id" => id = args.next(),
            "--scopes" => scopes = args.next(),
            other => return Err(format!("keygen: unknown argument '{other}'")),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or("keygen needs --id NAME")?;
    let scopes: Vec<core_api::auth::Scope> = scopes
        .ok_or("keygen needs --scopes (comma-separated)")?
        .split(',')
        .map(|s| {
            serde_json::from_value(serde_json::Value::String(s.trim().to_string()))
                .map_err(|_| format!("keygen: unknown scope '{s}'"))
        })
        .collect::<Result<_, _>>()?;
    let key = core_api::auth::generate_key();
    let entry = core_api::auth::OperatorKey {
        id,
        sha256: core_api::auth::key_digest(&key),
        scopes,
    };
    let scopes: Vec<String> = entry
        .scopes
        .iter()
        .map(|s| format!("\"{}\"", s.as_str()))
        .collect();
    println!("key (send as x-api-key; shown once, store it in your secret manager):\n{key}\n");
    println!(
        "configuration entry ([auth] operator_keys):\n{{ id = \"{}\", sha256 = \"{}\", scopes = [{}] }}",
        entry.id,
        entry.sha256,
        scopes.join(", ")
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    if let Err(e) = run().await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let config =
        Config::load(config_path()?.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    if config.cluster.role == Role::Shard {
        return run_shard_node(config, metrics).await;
    }
    let state = AppState::loading(config.clone(), metrics.clone());
    let listener = tokio::net::TcpListener::bind(&config.server.bind)
        .await
        .map_err(|e| format!("cannot bind {}: {e}", config.server.bind))?;
    tracing::info!("listening on http://{}", config.server.bind);
    let server = tokio::spawn(
        axum::serve(
            listener,
            app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .into_future(),
    );

    let model_dir = config.model.dir.clone();
    let encoder = tokio::task::spawn_blocking(move || gpu_batch::TextEncoder::load(&model_dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!(
        backend = encoder.backend().name(),
        dim = encoder.dim(),
        "embedding model loaded"
    );
    let engine = core_api::bootstrap::open_embedded(config, Arc::new(encoder), metrics)
        .await
        .map_err(|e| e.to_string())?;
    let _ = state.engine.set(engine.clone());
    tracing::info!("ready");

    server
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if let Err(e) = engine.persist_policy().await {
        tracing::warn!(error = %e, "ranking policy state not saved");
    }
    tracing::info!("shut down");
    Ok(())
}

/// A shard node: internal RPC on `cluster.internal_bind`, probes and metrics on
/// `server.bind`; no model, no public API.
async fn run_shard_node(config: Config, metrics: Arc<Metrics>) -> Result<(), String> {
    let node = ShardNode::new(&config, metrics).map_err(|e| e.to_string())?;
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot bind {addr}: {e}"))
    };
    let internal = bind(config.cluster.internal_bind.clone()).await?;
    let public = bind(config.server.bind.clone()).await?;
    tracing::info!(
        internal = %config.cluster.internal_bind,
        public = %config.server.bind,
        "shard node listening"
    );
    let sync = node.spawn_sync();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let internal = tokio::spawn(
        axum::serve(internal, node.internal_app())
            .with_graceful_shutdown(until_stopped(stopped.clone()))
            .into_future(),
    );
    let public = tokio::spawn(
        axum::serve(public, node.public_app())
            .with_graceful_shutdown(until_stopped(stopped))
            .into_future(),
    );
    shutdown_signal().await;
    let _ = stop.send(true);
    sync.abort();
    for server in [internal, public] {
        server
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
