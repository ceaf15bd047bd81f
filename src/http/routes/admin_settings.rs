//! Settings of the admin console that used to live only in `kefu.toml`: the desk settings
//! (`/api/v1/admin/settings`: problem types, wrap-up required, survey, timers, automatic messages,
//! uploads) and the sites of signed identities (`/api/v1/admin/sites`). Admins only; every change is
//! written to the audit log. Also the public survey settings for the chat page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::AuditKind;
use crate::error::{Error, Result};
use crate::http::access::{Admin, ClientIp};
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath};
use crate::http::routes::admin::audit_change;
use crate::http::{off_thread, AppState};
use crate::services::settings::{DeskSettings, Effective, Section, SettingsPatch, SurveySettings};
use crate::services::visitors::sites::{SiteView, SiteWithSecret};

/// Routes under `/api/v1/admin/settings`, `/api/v1/admin/sites` and `/api/v1/visitor/survey`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(reset_settings))
        .routes(routes!(list_sites, create_site))
        .routes(routes!(rename_site, delete_site))
        .routes(routes!(rotate_site_secret))
        .routes(routes!(survey))
}

/// The desk settings and which sections were saved in the console.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeskSettingsView)]
struct SettingsView {
    settings: DeskSettings,
    /// Sections saved in the console; the others follow `kefu.toml` (or the built-in defaults).
    customized: Vec<Section>,
}

impl From<&Effective> for SettingsView {
    fn from(effective: &Effective) -> SettingsView {
        SettingsView {
            settings: effective.settings.clone(),
            customized: effective.customized.iter().copied().collect(),
        }
    }
}

/// The desk settings in force.
#[utoipa::path(
    get,
    path = "/api/v1/admin/settings",
    tag = "admin",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every section, and the ones saved in the console", body = SettingsView),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn get_settings(State(state): State<AppState>, Admin(_): Admin) -> Json<SettingsView> {
    Json(SettingsView::from(
        state.conversations.settings().current().as_ref(),
    ))
}

/// Replaces the sections given (each whole); the others stay. Takes effect at once.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/settings",
    tag = "admin",
    request_body = SettingsPatch,
    security(("session" = [])),
    responses(
        (status = 200, description = "The settings now in force", body = SettingsView),
        (status = 400, description = "`invalid_input` (a value out of range; nothing is saved) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn update_settings(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppJson(patch): AppJson<SettingsPatch>,
) -> Result<Json<SettingsView>> {
    let settings = std::sync::Arc::clone(state.conversations.settings());
    let (effective, changes) =
        off_thread(&settings, move |settings| settings.update(patch)).await?;
    if !changes.is_empty() {
        audit_change(
            &state,
            AuditKind::SettingsChanged,
            "settings".into(),
            admin.actor(ip),
            changes.join("; "),
        )
        .await?;
    }
    Ok(Json(SettingsView::from(effective.as_ref())))
}

/// Forgets a section saved in the console: `kefu.toml`'s value (or the built-in one) applies again.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/settings/{section}",
    tag = "admin",
    params(("section" = String, Path, description = "`wrap_up`, `survey`, `timers`, `messages` or `uploads`")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The settings now in force", body = SettingsView),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such section", body = ErrorBody),
    ),
)]
async fn reset_settings(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(section): AppPath<String>,
) -> Result<Json<SettingsView>> {
    let section = Section::parse(&section)
        .ok_or_else(|| Error::NotFound(format!("no settings section `{section}`")))?;
    let settings = std::sync::Arc::clone(state.conversations.settings());
    let (effective, changes) =
        off_thread(&settings, move |settings| settings.reset(section)).await?;
    let mut detail = format!("{} reset to the configuration file", section.as_str());
    if !changes.is_empty() {
        detail = format!("{detail}: {}", changes.join("; "));
    }
    audit_change(
        &state,
        AuditKind::SettingsChanged,
        "settings".into(),
        admin.actor(ip),
        detail,
    )
    .await?;
    Ok(Json(SettingsView::from(effective.as_ref())))
}

#[derive(Debug, Serialize, ToSchema)]
struct SiteList {
    sites: Vec<SiteView>,
}

/// The sites whose signed identities are verified (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/admin/sites",
    tag = "admin",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every site, in the order added", body = SiteList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_sites(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<SiteList>> {
    let sites = off_thread(&state.visitors, |visitors| visitors.sites().all()).await?;
    Ok(Json(SiteList {
        sites: sites.iter().map(|site| site.view()).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSite {
    /// 1-64 of `a-z 0-9 - _`, unique: what the widget passes as `data-site`.
    id: String,
    /// 1-32 characters, for people.
    name: String,
}

/// Adds a site; its secret is generated and shown in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/admin/sites",
    tag = "admin",
    request_body = NewSite,
    security(("session" = [])),
    responses(
        (status = 201, description = "The site and its secret (shown once)", body = SiteWithSecret),
        (status = 400, description = "`invalid_input` (id, name, an id in use, too many sites) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn create_site(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppJson(site): AppJson<NewSite>,
) -> Result<(StatusCode, Json<SiteWithSecret>)> {
    let created = off_thread(&state.visitors, move |visitors| {
        visitors.sites().create(&site.id, &site.name)
    })
    .await?;
    audit_change(
        &state,
        AuditKind::SiteChanged,
        format!("site:{}", created.site.id),
        admin.actor(ip),
        format!("added ({})", created.site.name),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SiteRename {
    /// 1-32 characters.
    name: String,
}

/// Renames a site (its id, which host pages send, cannot change).
#[utoipa::path(
    patch,
    path = "/api/v1/admin/sites/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Site id")),
    request_body = SiteRename,
    security(("session" = [])),
    responses(
        (status = 200, description = "The site", body = SiteView),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn rename_site(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<String>,
    AppJson(rename): AppJson<SiteRename>,
) -> Result<Json<SiteView>> {
    let (before, after) = off_thread(&state.visitors, move |visitors| {
        visitors.sites().rename(&id, &rename.name)
    })
    .await?;
    if before.name != after.name {
        audit_change(
            &state,
            AuditKind::SiteChanged,
            format!("site:{}", after.id),
            admin.actor(ip),
            format!("name: {} → {}", before.name, after.name),
        )
        .await?;
    }
    Ok(Json(after))
}

/// Removes a site: identities it signed are refused from now on (`identity_invalid`).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/sites/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Site id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The removed site", body = SiteView),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn delete_site(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<String>,
) -> Result<Json<SiteView>> {
    let removed = off_thread(&state.visitors, move |visitors| {
        visitors.sites().delete(&id)
    })
    .await?;
    audit_change(
        &state,
        AuditKind::SiteChanged,
        format!("site:{}", removed.id),
        admin.actor(ip),
        "removed".into(),
    )
    .await?;
    Ok(Json(removed))
}

/// Gives a site a new secret (shown in this answer only); the old one stops working at once.
#[utoipa::path(
    post,
    path = "/api/v1/admin/sites/{id}/secret",
    tag = "admin",
    params(("id" = String, Path, description = "Site id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The site and its new secret (shown once)", body = SiteWithSecret),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn rotate_site_secret(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<String>,
) -> Result<Json<SiteWithSecret>> {
    let rotated = off_thread(&state.visitors, move |visitors| {
        visitors.sites().rotate(&id)
    })
    .await?;
    audit_change(
        &state,
        AuditKind::SiteChanged,
        format!("site:{}", rotated.site.id),
        admin.actor(ip),
        format!("secret rotated (now …{})", rotated.site.secret_hint),
    )
    .await?;
    Ok(Json(rotated))
}

/// Public: the satisfaction survey as the chat page shows it (scale, texts, when it is offered).
#[utoipa::path(
    get,
    path = "/api/v1/visitor/survey",
    tag = "conversations",
    security(()),
    responses(
        (status = 200, description = "The survey settings", body = SurveySettings),
    ),
)]
async fn survey(State(state): State<AppState>) -> Json<SurveySettings> {
    Json(state.conversations.desk_settings().survey)
}
