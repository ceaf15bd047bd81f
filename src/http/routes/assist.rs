//! Assisted replies: suggestions on request, feedback, adoption figures; visitor self-service.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::error::{Error, Result};
use crate::http::access::{authorize, readable_reply_scopes, Authenticated, Permission, Visitor};
use crate::http::extract::{AppJson, AppQuery};
use crate::http::{off_thread, AppState};
use crate::services::assist::{
    Adoption, Deflection, DeflectionEvent, FeedbackAction, FeedbackCounts, FeedbackReader,
    Suggestion, SuggestionKind, VisitorSuggestions,
};
use crate::services::conversations::DeskFact;

/// Routes under `/api/v1/assist` and the visitor self-service routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(suggest))
        .routes(routes!(feedback))
        .routes(routes!(adoption))
        .routes(routes!(deflection))
        .routes(routes!(visitor_suggest))
        .routes(routes!(visitor_deflection))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SuggestRequest {
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Suggestions {
    suggestions: Vec<Suggestion>,
}

/// From a conversation's recent visitor messages, or from a text.
#[utoipa::path(
    post,
    path = "/api/v1/assist/suggest",
    tag = "assist",
    request_body = SuggestRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "Up to 3 articles (best passage) and 3 quick replies", body = Suggestions),
        (status = 400, description = "`invalid_input`, `invalid_query` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn suggest(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppJson(request): AppJson<SuggestRequest>,
) -> Result<Json<Suggestions>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let scopes = readable_reply_scopes(&caller.account);
    let suggestions = match (request.conversation_id, request.text) {
        (Some(id), None) => {
            let conversation = state.conversations.conversation(&id)?;
            authorize(
                &caller.account,
                Permission::assist(&conversation, caller.account.id),
            )?;
            off_thread(&state.assist, move |assist| {
                assist.for_conversation(
                    &id,
                    caller.account.id,
                    &caller.account.display_name,
                    &scopes,
                )
            })
            .await?
        }
        (None, Some(text)) => {
            off_thread(&state.assist, move |assist| {
                assist.for_text(
                    &text,
                    caller.account.id,
                    &caller.account.display_name,
                    &scopes,
                )
            })
            .await?
        }
        _ => {
            return Err(Error::InvalidInput(
                "give exactly one of conversation_id and text".into(),
            ))
        }
    };
    Ok(Json(Suggestions { suggestions }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    kind: SuggestionKind,
    id: String,
    action: FeedbackAction,
    /// The conversation the suggestion was made in (its recent visitor messages are the question).
    #[serde(default)]
    conversation_id: Option<String>,
    /// Or the text it was suggested for.
    #[serde(default)]
    text: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/assist/feedback",
    tag = "assist",
    request_body = FeedbackRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "The item's counters after this feedback", body = FeedbackCounts),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`, or `article_not_found` / `quick_reply_not_found` (also for an item the caller may not read)", body = ErrorBody),
    ),
)]
async fn feedback(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppJson(request): AppJson<FeedbackRequest>,
) -> Result<Json<FeedbackCounts>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let mut group = None;
    if let Some(id) = &request.conversation_id {
        let conversation = state.conversations.conversation(id)?;
        authorize(
            &caller.account,
            Permission::assist(&conversation, caller.account.id),
        )?;
        group = conversation.group;
    }
    let words = state
        .assist
        .question_words(request.conversation_id.as_deref(), request.text.as_deref())?;
    let reader = FeedbackReader {
        drafts: authorize(&caller.account, Permission::ReadDrafts).is_ok(),
        reply_scope: &|scope| authorize(&caller.account, Permission::ReadReplies(scope)).is_ok(),
    };
    let counts = state.assist.record_feedback(
        request.kind,
        &request.id,
        request.action,
        words,
        state.conversations.now(),
        &reader,
    )?;
    if request.action != FeedbackAction::Dismissed {
        state.conversations.note(&[DeskFact::SuggestionAdopted {
            agent: caller.account.id,
            group,
        }]);
    }
    Ok(Json(counts))
}

#[derive(Debug, Serialize, ToSchema)]
struct AdoptionList {
    items: Vec<AdoptionItem>,
}

/// Adoption figures of one item with its title, so charts name items as agents know them.
#[derive(Debug, Serialize, ToSchema)]
struct AdoptionItem {
    #[serde(flatten)]
    adoption: Adoption,
    /// The article's or quick reply's title now; `null` when it was deleted since.
    title: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/assist/adoption",
    tag = "assist",
    security(("session" = [])),
    responses(
        (status = 200, description = "Adoption figures per suggested item", body = AdoptionList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn adoption(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<AdoptionList>> {
    authorize(&caller.account, Permission::ViewTeamStatistics)?;
    let article_titles: std::collections::HashMap<String, String> = state
        .knowledge
        .list(None)?
        .into_iter()
        .map(|article| (article.id, article.title))
        .collect();
    let items = state
        .assist
        .adoption()?
        .into_iter()
        .map(|adoption| {
            let title = match adoption.kind {
                SuggestionKind::Article => article_titles.get(&adoption.id).cloned(),
                SuggestionKind::QuickReply => adoption
                    .id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| state.quick_replies.get(id).ok())
                    .map(|reply| reply.title),
            };
            AdoptionItem { adoption, title }
        })
        .collect();
    Ok(Json(AdoptionList { items }))
}

#[utoipa::path(
    get,
    path = "/api/v1/assist/deflection",
    tag = "assist",
    security(("session" = [])),
    responses(
        (status = 200, description = "Self-service figures", body = Deflection),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn deflection(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Deflection>> {
    authorize(&caller.account, Permission::ViewTeamStatistics)?;
    Ok(Json(state.assist.deflection()?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VisitorSuggestParams {
    q: String,
}

/// Before queueing, the visitor page shows the best published articles for the typed question:
/// none for greetings, thanks and chit-chat, or when no article is confident enough; `intent` says
/// when the visitor asks for a person (`ask_for_agent`), so the page offers the queue at once.
#[utoipa::path(
    get,
    path = "/api/v1/visitor/suggest",
    tag = "assist",
    params(VisitorSuggestParams),
    security(()),
    responses(
        (status = 200, description = "The message's intent and up to 3 published articles (none when not confident)", body = VisitorSuggestions),
        (status = 400, description = "`invalid_query` or `bad_request`", body = ErrorBody),
    ),
)]
async fn visitor_suggest(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<VisitorSuggestParams>,
) -> Result<Json<VisitorSuggestions>> {
    let text = params.q.trim().to_string();
    if text.is_empty() || text.chars().count() > crate::domain::limits::MAX_VISITOR_QUESTION_CHARS {
        return Err(Error::InvalidQuery {
            reason: "a question is 1-500 characters".into(),
        });
    }
    let answer = off_thread(&state.assist, move |assist| assist.for_visitor(&text)).await?;
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeflectionRequest {
    /// `resolved` (已解决) or `escalated` (仍需人工).
    outcome: DeflectionEvent,
    /// The question the articles were shown for (the `q` of `GET /api/v1/visitor/suggest`).
    question: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/visitor/deflection",
    tag = "assist",
    request_body = DeflectionRequest,
    security(("visitor" = [])),
    responses(
        (status = 201, description = "Counted; the figures after it", body = Deflection),
        (status = 200, description = "This token had already answered for this question: not counted again; the figures", body = Deflection),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no valid visitor token", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the token answered for too many questions", body = ErrorBody),
    ),
)]
async fn visitor_deflection(
    State(state): State<AppState>,
    visitor: Visitor,
    AppJson(request): AppJson<DeflectionRequest>,
) -> Result<(StatusCode, Json<Deflection>)> {
    let (counted, figures) = off_thread(&state.assist, move |assist| {
        assist.record_visitor_outcome(&visitor.token, &request.question, request.outcome)
    })
    .await?;
    let status = if counted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(figures)))
}
