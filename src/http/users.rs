//! `/api/users/*` and the user's public shape.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::Authenticated;
use crate::store::{User, UserRole, iso};

/// A user as Strapi 5 sends it, plus the populated `role` (as Strapi v3 did). Never a password hash or
/// a token: this type has no field that could hold one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
pub struct UserView<'a> {
    pub id: i64,
    pub document_id: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub provider: &'a str,
    pub confirmed: bool,
    pub blocked: bool,
    pub created_at: String,
    pub updated_at: String,
    pub published_at: String,
    pub role: RoleView<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Role)]
pub struct RoleView<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

impl<'a> From<&'a UserRole> for RoleView<'a> {
    fn from(r: &'a UserRole) -> Self {
        Self {
            id: r.id,
            name: &r.name,
            description: &r.description,
            kind: &r.kind,
        }
    }
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        Self {
            id: u.id,
            document_id: &u.document_id,
            username: &u.username,
            email: &u.email,
            provider: &u.provider,
            confirmed: u.confirmed,
            blocked: u.blocked,
            created_at: iso(u.created_at),
            updated_at: iso(u.updated_at),
            // Users are never drafts; Strapi 5 sets publishedAt at creation.
            published_at: iso(u.created_at),
            role: RoleView::from(&u.role),
        }
    }
}

/// `GET /api/users/me` → the bare user object.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The user the token belongs to", body = UserView),
        super::openapi::TokenErrors))]
pub async fn me(Authenticated(who): Authenticated) -> Response {
    Json(UserView::from(who.user.as_ref())).into_response()
}
