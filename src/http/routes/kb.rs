//! Knowledge base: search, list, read, write and delete articles, and the report of broken files.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::articles::ArticleError;
use crate::domain::ArticleStatus;
use crate::error::Result;
use crate::http::access::{CanEditArticles, MaybeSignedIn, Permission};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::AppState;
use crate::search::IndexedArticle;
use crate::services::{ArticleView, SearchQuery, SearchResults};

/// Routes under `/api/v1/kb`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/kb/search", get(search_articles))
        .route("/api/v1/kb/articles", get(list_articles))
        .route(
            "/api/v1/kb/articles/{*id}",
            get(get_article).put(put_article).delete(delete_article),
        )
        .route("/api/v1/kb/errors", get(list_errors))
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    category: Option<String>,
    #[serde(default)]
    drafts: bool,
}

async fn search_articles(
    State(state): State<AppState>,
    caller: MaybeSignedIn,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<SearchResults>> {
    if params.drafts {
        caller.require(Permission::ReadDrafts)?;
    }
    let query = SearchQuery {
        text: params.q.unwrap_or_default(),
        limit: params.limit,
        category: params.category,
        include_drafts: params.drafts,
    };
    Ok(Json(state.knowledge.search(&query)?))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    category: Option<String>,
}

#[derive(Debug, Serialize)]
struct ArticleList {
    articles: Vec<IndexedArticle>,
    total: usize,
}

/// Drafts are listed for editors only.
async fn list_articles(
    State(state): State<AppState>,
    caller: MaybeSignedIn,
    AppQuery(params): AppQuery<ListParams>,
) -> Result<Json<ArticleList>> {
    let mut articles = state.knowledge.list(params.category.as_deref())?;
    if !caller.may(Permission::ReadDrafts) {
        articles.retain(|article| article.status != ArticleStatus::Draft);
    }
    Ok(Json(ArticleList {
        total: articles.len(),
        articles,
    }))
}

/// A draft answers `article_not_found` to anyone but editors, as if it did not exist.
async fn get_article(
    State(state): State<AppState>,
    caller: MaybeSignedIn,
    AppPath(id): AppPath<String>,
) -> Result<Json<ArticleView>> {
    let view = state.knowledge.get(&id)?;
    if view.status == ArticleStatus::Draft && !caller.may(Permission::ReadDrafts) {
        return Err(crate::error::Error::ArticleNotFound(view.id));
    }
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutArticleRequest {
    markdown: String,
}

async fn put_article(
    _editor: CanEditArticles,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    AppJson(request): AppJson<PutArticleRequest>,
) -> Result<(StatusCode, Json<ArticleView>)> {
    let (view, created) = state.knowledge.put(&id, request.markdown).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

async fn delete_article(
    _editor: CanEditArticles,
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode> {
    state.knowledge.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct ErrorList {
    errors: Vec<ArticleError>,
}

/// Broken files are an editor's business.
async fn list_errors(
    State(state): State<AppState>,
    caller: MaybeSignedIn,
) -> Result<Json<ErrorList>> {
    caller.require(Permission::ReadDrafts)?;
    Ok(Json(ErrorList {
        errors: state.knowledge.errors(),
    }))
}
