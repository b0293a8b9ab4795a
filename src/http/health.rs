//! Liveness and readiness probes for orchestrators and load balancers.

use super::openapi::{FeedReport, Readiness, Status};
use crate::store::FeedState;
use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::error::{Error, Result};

/// `GET /healthz`: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "Serving", body = Status)))]
pub async fn alive() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// `GET /readyz`: the database answers, so requests can succeed.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "Ready, and where the invalidation feed stands", body = Readiness),
        (status = 503, description = "The database does not answer", body = super::openapi::ErrorEnvelope)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>> {
    match state.auth.store().ping().await {
        Ok(()) => Ok(Json(Readiness {
            status: "ok",
            invalidation_feed: FeedReport {
                state: match state.feed.state() {
                    FeedState::Listening => "listening",
                    FeedState::Connecting => "connecting",
                    FeedState::None => "none",
                },
                connects: state.feed.connects(),
            },
        })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Error::Unavailable)
        }
    }
}
