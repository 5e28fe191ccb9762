//! Start-up: logging, the store, the bootstrap admin, the background workers
//! and the HTTP server with its middleware.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use roster_store::{Store, UserInsert};
use tokio::sync::Notify;

use crate::auth::hash_token;
use crate::cli::ServeArgs;
use crate::clock::{Clock, ClockMode};
use crate::error::ApiError;
use crate::state::{App, AppState};

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colour codes only make sense on a terminal: in a file, a pipe or a log
    // collector they are noise around every field.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Connects and applies the migrations.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .map_err(|error| anyhow::anyhow!("cannot open {url}: {error}"))?;
    store
        .migrate()
        .await
        .map_err(|error| anyhow::anyhow!("cannot migrate {url}: {error}"))?;
    Ok(store)
}

fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

async fn build_state(
    store: Store,
    mode: ClockMode,
    data_dir: std::path::PathBuf,
    lease_seconds: i64,
) -> anyhow::Result<AppState> {
    let clock = Clock::load(mode, &store).await?;
    let worker_id = format!("{}-{}", std::process::id(), &crate::auth::new_token()[..8]);
    Ok(AppState(Arc::new(App {
        store,
        clock,
        data_dir,
        worker_id,
        jobs_ready: Notify::new(),
        metrics: metrics_handle(),
        lease_seconds,
        settings_cache: Default::default(),
        activity_cache: Default::default(),
    })))
}

/// State for one-shot commands (sweep, demo, import, export).
pub async fn offline_state(url: &str) -> anyhow::Result<AppState> {
    let store = open_store(url).await?;
    let data_dir = std::env::var_os("ROSTER_DATA_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "roster-data".into());
    build_state(
        store,
        ClockMode::System,
        data_dir,
        crate::engine::jobs::LEASE_SECONDS,
    )
    .await
}

/// State over the database at `url` with the manual clock, attachments
/// under `data_dir` and an admin `admin` who owns `admin_token`: what
/// in-process tests of the router build (`app::router` + `oneshot`).
pub async fn manual_state(
    url: &str,
    data_dir: std::path::PathBuf,
    admin_token: &str,
) -> anyhow::Result<AppState> {
    let store = open_store(url).await?;
    let state = build_state(
        store,
        ClockMode::Manual,
        data_dir,
        crate::engine::jobs::LEASE_SECONDS,
    )
    .await?;
    bootstrap_admin(&state, admin_token).await?;
    Ok(state)
}

/// Makes sure the admin user `admin` exists and owns `token`. Processes
/// starting together on one database may race to create it: the loser of
/// the race tries again and finds it.
async fn bootstrap_admin(state: &AppState, token: &str) -> anyhow::Result<()> {
    for _ in 0..3 {
        match try_bootstrap_admin(state, token).await {
            Err(error)
                if matches!(
                    error.downcast_ref::<roster_store::StoreError>(),
                    Some(roster_store::StoreError::Conflict(_))
                ) =>
            {
                continue;
            }
            other => return other,
        }
    }
    try_bootstrap_admin(state, token).await
}

async fn try_bootstrap_admin(state: &AppState, token: &str) -> anyhow::Result<()> {
    let mut tx = state.store.write().await?;
    let now = state.clock.now().as_microsecond();
    let id = match tx.find_user_by_username("admin").await? {
        Some(mut user) => {
            if user.role != "admin" || !user.active {
                user.role = "admin".into();
                user.active = true;
                tx.update_user(&user, now).await?;
            }
            user.id
        }
        None => {
            tx.insert_user(
                &UserInsert {
                    username: "admin".into(),
                    email: "admin@localhost".into(),
                    display_name: "Administrator".into(),
                    active: true,
                    role: "admin".into(),
                    ..UserInsert::default()
                },
                now,
            )
            .await?
        }
    };
    tx.insert_token(id, &hash_token(token), now).await?;
    tx.commit().await?;
    Ok(())
}

/// The whole HTTP surface with its middleware.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_parts();
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(2 * 1024 * 1024))
        .with_state(state)
}

/// The API's routes under `/api/v1` with the document derived from them,
/// which the routes serve at `/api/v1/openapi.json`.
pub fn api_parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    let (api, mut document) =
        utoipa_axum::router::OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
            .nest("/api/v1", crate::api::router())
            .split_for_parts();
    crate::openapi::add_shared_problems(&mut document);
    let json: Arc<str> = document.to_json().unwrap_or_default().into();
    let api = api.route(
        "/api/v1/openapi.json",
        get(move || {
            let json = json.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    json.to_string(),
                )
            }
        }),
    );
    (api, document)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store.database).await?;
    tokio::fs::create_dir_all(&args.data_dir).await?;
    let state = build_state(
        store,
        args.clock,
        args.data_dir.clone(),
        args.job_lease_seconds,
    )
    .await?;
    if let Some(token) = args
        .bootstrap_token
        .as_deref()
        .filter(|token| !token.is_empty())
    {
        bootstrap_admin(&state, token).await?;
    }
    let mut demo_summary = None;
    if args.demo {
        let mut tx = state.store.read().await?;
        let loaded = tx.find_group_by_name("Sales").await?.is_some();
        tx.rollback().await?;
        demo_summary = Some(if loaded {
            "demo organisation already loaded (its tokens were printed when it was loaded)"
                .to_string()
        } else {
            crate::demo::load(&state, 300).await?
        });
    }
    if args.workers == 0 {
        tracing::warn!(
            "--workers 0: this process runs no jobs; they run in other processes on the same database or through POST /api/v1/jobs/run-due"
        );
    }
    for _ in 0..args.workers {
        tokio::spawn(crate::engine::jobs::worker_loop(state.clone()));
    }
    tokio::spawn(crate::engine::jobs::scheduler_loop(state.clone()));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", args.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, database = %redact(&args.store.database), clock = args.clock.as_str(), "roster is listening");
    println!("Roster is running at http://{address}");
    println!("  API:     http://{address}/api/v1  (OpenAPI: http://{address}/api/v1/openapi.json)");
    println!("  health:  http://{address}/healthz   metrics: http://{address}/metrics");
    match args
        .bootstrap_token
        .as_deref()
        .filter(|token| !token.is_empty())
    {
        Some(_) => println!(
            "  admin:   user `admin`, token from ROSTER_BOOTSTRAP_TOKEN (send `Authorization: Bearer <token>`)"
        ),
        None => println!("  no ROSTER_BOOTSTRAP_TOKEN set: set it to get an admin token"),
    }
    if let Some(summary) = &demo_summary {
        println!("  {summary}");
    }
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    state.store.close().await;
    Ok(())
}

/// The database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    if state.store.ping().await {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "database unavailable"})),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    if let Ok(mut tx) = state.store.read().await {
        if let Ok(due) = tx.count_due_jobs(state.clock.now().as_microsecond()).await {
            body.push_str("# HELP roster_jobs_due Jobs pending and due, or running.\n# TYPE roster_jobs_due gauge\n");
            body.push_str(&format!("roster_jobs_due {due}\n"));
        }
        if let Ok(users) = tx.count_users().await {
            body.push_str(
                "# HELP roster_users Users in the organisation.\n# TYPE roster_users gauge\n",
            );
            body.push_str(&format!("roster_users {users}\n"));
        }
        let _ = tx.rollback().await;
    }
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// Counts requests by status, times them, and logs one line per request.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The path only: a query string may carry what does not belong in a log.
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    tracing::info!(
        target: "roster::http",
        method = %method,
        path = %path,
        status,
        latency_ms = %format_args!("{:.2}", elapsed.as_secs_f64() * 1000.0),
        "request"
    );
    metrics::counter!(
        "roster_http_requests_total",
        "method" => method.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("roster_http_request_seconds").record(elapsed.as_secs_f64());
    response
}
