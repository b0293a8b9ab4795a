//! Liveness and readiness probes for orchestrators and load balancers.

use super::openapi::Status;
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
    responses((status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database does not answer", body = super::openapi::ErrorEnvelope)))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Status>> {
    match state.auth.store().ping().await {
        Ok(()) => Ok(Json(Status { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Error::Unavailable)
        }
    }
}
