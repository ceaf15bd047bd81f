//! Workbench statistics (工作台数据): `/api/v1/stats/summary` and `/api/v1/stats/hourly`.

use axum::extract::State;
use axum::Json;
use jiff::civil::Date;
use jiff::ToSpan;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{AccountId, GroupId, Role};
use crate::error::{Error, Result};
use crate::http::access::{authorize, Authenticated, Permission};
use crate::http::error::ErrorBody;
use crate::http::extract::AppQuery;
use crate::http::{off_thread, AppState};
use crate::services::stats::{Figures, HourFigures, Range, Scope};

/// Routes under `/api/v1/stats`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(hourly))
}

/// Which days: `day` (`today`, `yesterday` or a date) or `from`/`to` (dates, inclusive); today when
/// neither is given.
#[derive(Debug)]
struct RangeQuery<'a> {
    day: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    /// `agent` (default), `group` or `channel`.
    #[serde(default)]
    by: Option<String>,
    /// `today`, `yesterday` or `YYYY-MM-DD`; not with `from`/`to`.
    #[serde(default)]
    day: Option<String>,
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    from: Option<String>,
    /// Last day (included), `YYYY-MM-DD`; `from` when absent.
    #[serde(default)]
    to: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HourlyQuery {
    /// `team` (default), `agent`, `group` or `channel`.
    #[serde(default)]
    scope: Option<String>,
    /// The agent's or group's id; none for `team` and `channel`.
    #[serde(default)]
    id: Option<u64>,
    /// The channel's label (`web`, `api`, `wechat_official`, `wecom_kf`…), for `scope=channel`.
    #[serde(default)]
    channel: Option<String>,
    /// `today`, `yesterday` or `YYYY-MM-DD`; not with `from`/`to`.
    #[serde(default)]
    day: Option<String>,
    /// First day, `YYYY-MM-DD`.
    #[serde(default)]
    from: Option<String>,
    /// Last day (included), `YYYY-MM-DD`; `from` when absent.
    #[serde(default)]
    to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SummaryRow {
    /// The agent's or group's id (0 for a channel).
    id: u64,
    /// Display name, group name, or the channel's label.
    name: String,
    /// The channel's label, in a row `by=channel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    figures: Figures,
}

#[derive(Debug, Serialize, ToSchema)]
struct Summary {
    from: Date,
    to: Date,
    time_zone: String,
    by: &'static str,
    /// The whole team; `null` for an agent, who sees only their own row.
    team: Option<Figures>,
    rows: Vec<SummaryRow>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Hourly {
    from: Date,
    to: Date,
    time_zone: String,
    scope: Scope,
    hours: Vec<HourFigures>,
}

fn parse_date(text: &str) -> Result<Date> {
    text.parse().map_err(|_| {
        Error::InvalidInput(format!(
            "`{text}` is not a date (YYYY-MM-DD, `today` or `yesterday`)"
        ))
    })
}

fn resolve_range(state: &AppState, query: RangeQuery<'_>) -> Result<Range> {
    let today = state.stats.date_of(state.conversations.now());
    let (from, to) = match (query.day, query.from, query.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(Error::InvalidInput(
                "give either `day` or `from`/`to`, not both".into(),
            ))
        }
        (Some(day), None, None) => {
            let day = match day {
                "today" => today,
                "yesterday" => today
                    .checked_sub(1.day())
                    .map_err(|error| Error::InvalidInput(error.to_string()))?,
                other => parse_date(other)?,
            };
            (day, day)
        }
        (None, Some(from), to) => {
            let from = parse_date(from)?;
            (from, to.map(parse_date).transpose()?.unwrap_or(from))
        }
        (None, None, Some(_)) => {
            return Err(Error::InvalidInput("`to` needs a `from`".into()));
        }
        (None, None, None) => (today, today),
    };
    state.stats.range(from, to)
}

/// Supervisors and admins see every agent and group; an agent sees their own figures only.
#[utoipa::path(
    get,
    path = "/api/v1/stats/summary",
    tag = "statistics",
    params(SummaryQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "A row per agent (or group) and the team's figures (`null` for an agent)", body = Summary),
        (status = 400, description = "`invalid_input` (range, or `by` other than `agent`/`group`) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...), not at the desk, or an agent asking `by=group` (`forbidden`)", body = ErrorBody),
    ),
)]
async fn summary(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(query): AppQuery<SummaryQuery>,
) -> Result<Json<Summary>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let team_view = authorize(&caller.account, Permission::ViewTeamStatistics).is_ok();
    let range = resolve_range(
        &state,
        RangeQuery {
            day: query.day.as_deref(),
            from: query.from.as_deref(),
            to: query.to.as_deref(),
        },
    )?;
    let by = match query.by.as_deref().unwrap_or("agent") {
        "agent" => "agent",
        "group" if team_view => "group",
        "group" => return Err(Error::Forbidden("group figures are for supervisors".into())),
        "channel" if team_view => "channel",
        "channel" => {
            return Err(Error::Forbidden(
                "channel figures are for supervisors".into(),
            ))
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "`by` is `agent`, `group` or `channel`, not `{other}`"
            )))
        }
    };
    let accounts = std::sync::Arc::clone(&state.accounts);
    let me = caller.account.id;
    let (team, rows) = off_thread(&state.stats, move |stats| {
        // The summary holds every scope with activity or open work; any other scope is all zeros.
        let mut figures = stats.summary(&range)?;
        // Every channel with activity in the range, by label; `web` always.
        let mut labels: Vec<String> = figures
            .keys()
            .filter_map(|scope| match scope {
                Scope::Channel(label) => Some(label.clone()),
                _ => None,
            })
            .collect();
        if !labels.iter().any(|label| label == "web") {
            labels.insert(0, "web".to_string());
        }
        let mut take = |scope: Scope| figures.remove(&scope).unwrap_or_else(Figures::empty);
        let mut rows = Vec::new();
        if by == "channel" {
            for label in labels {
                rows.push(SummaryRow {
                    id: 0,
                    name: label.clone(),
                    figures: take(Scope::Channel(label.clone())),
                    channel: Some(label),
                });
            }
        } else if by == "group" {
            for group in accounts.list_groups()? {
                rows.push(SummaryRow {
                    id: group.id.0,
                    name: group.name,
                    channel: None,
                    figures: take(Scope::Group(group.id)),
                });
            }
        } else {
            for account in accounts.list_accounts()? {
                let listed = if team_view {
                    account.roles.contains(&Role::Agent)
                } else {
                    account.id == me
                };
                if listed {
                    rows.push(SummaryRow {
                        id: account.id.0,
                        name: account.display_name,
                        channel: None,
                        figures: take(Scope::Agent(account.id)),
                    });
                }
            }
        }
        let team = if team_view {
            Some(take(Scope::Team))
        } else {
            None
        };
        Ok((team, rows))
    })
    .await?;
    Ok(Json(Summary {
        from: range.from,
        to: range.to,
        time_zone: state.stats.time_zone_name().to_string(),
        by,
        team,
        rows,
    }))
}

/// The figures hour by hour; an agent may ask for their own series only.
#[utoipa::path(
    get,
    path = "/api/v1/stats/hourly",
    tag = "statistics",
    params(HourlyQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "Every hour of the range, empty hours as zeros", body = Hourly),
        (status = 400, description = "`invalid_input` (range, scope or id) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...), not at the desk, or an agent asking for another series (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    ),
)]
async fn hourly(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(query): AppQuery<HourlyQuery>,
) -> Result<Json<Hourly>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let range = resolve_range(
        &state,
        RangeQuery {
            day: query.day.as_deref(),
            from: query.from.as_deref(),
            to: query.to.as_deref(),
        },
    )?;
    let scope = match (query.scope.as_deref().unwrap_or("team"), query.id) {
        ("channel", None) => {
            let label = query
                .channel
                .clone()
                .filter(|label| !label.trim().is_empty())
                .ok_or_else(|| Error::InvalidInput("`scope=channel` needs a `channel`".into()))?;
            Scope::Channel(label.trim().to_string())
        }
        ("channel", Some(_)) => {
            return Err(Error::InvalidInput(
                "the channel scope takes `channel`, not `id`".into(),
            ))
        }
        ("team", None) => Scope::Team,
        ("agent", Some(id)) => Scope::Agent(AccountId(id)),
        ("group", Some(id)) => {
            state.accounts.group(GroupId(id))?;
            Scope::Group(GroupId(id))
        }
        ("team", Some(_)) => {
            return Err(Error::InvalidInput("the team scope takes no `id`".into()))
        }
        ("agent" | "group", None) => {
            return Err(Error::InvalidInput("this scope needs an `id`".into()))
        }
        (other, _) => {
            return Err(Error::InvalidInput(format!(
                "`scope` is `team`, `agent`, `group` or `channel`, not `{other}`"
            )))
        }
    };
    if query.channel.is_some() && !matches!(scope, Scope::Channel(_)) {
        return Err(Error::InvalidInput(
            "`channel` goes with `scope=channel`".into(),
        ));
    }
    if scope != Scope::Agent(caller.account.id) {
        authorize(&caller.account, Permission::ViewTeamStatistics)?;
    }
    let series = scope.clone();
    let hours = off_thread(&state.stats, move |stats| stats.hourly(series, &range)).await?;
    Ok(Json(Hourly {
        from: range.from,
        to: range.to,
        time_zone: state.stats.time_zone_name().to_string(),
        scope,
        hours,
    }))
}
