//! Market bodies and the list query.

use chrono::{DateTime, Utc};
use domain::listing::{
    FieldSet, MarketFilter, MarketListQuery, MarketProjection, MarketSort, PageError, PageRequest,
    SearchText,
};
use domain::market::{MarketChanges, MarketDraft, StatusChange};
use domain::{Amount, Category, Market, MarketDescription, MarketName, MarketStatus, Outcome};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{parses, parses_if_present, present};
use crate::error::{ApiError, FieldError};

/// `POST /api/v1/markets` and `PUT /api/v1/markets/{id}`: what a market says.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketContentRequest {
    /// The question, 3 to 200 characters.
    #[garde(custom(parses(MarketName::parse)))]
    #[schema(
        example = "Will it rain in Paris on 2027-01-01?",
        min_length = 3,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]+[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Up to 5,000 characters.
    #[garde(custom(parses_if_present(MarketDescription::parse)))]
    #[serde(default)]
    #[schema(
        max_length = 5000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub description: Option<String>,
    /// A slug: lower-case letters, digits and `-`, 1 to 50 characters.
    #[garde(custom(parses(Category::parse)))]
    #[schema(example = "weather", pattern = "^[a-z0-9-]{1,50}$")]
    pub category: String,
    /// When trading ends (RFC 3339); must be in the future.
    #[garde(skip)]
    pub end_date: DateTime<Utc>,
}

impl MarketContentRequest {
    pub fn into_draft(self) -> Result<MarketDraft, ApiError> {
        Ok(MarketDraft {
            name: MarketName::parse(&self.name).map_err(|e| ApiError::invalid_field("name", e))?,
            description: MarketDescription::parse(self.description.as_deref().unwrap_or_default())
                .map_err(|e| ApiError::invalid_field("description", e))?,
            category: Category::parse(&self.category)
                .map_err(|e| ApiError::invalid_field("category", e))?,
            end_date: self.end_date,
        })
    }
}

/// `POST /api/v1/markets`: what a market says, and optionally its creator's first position
/// (created together or not at all).
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMarketRequest {
    /// The question, 3 to 200 characters.
    #[garde(custom(parses(MarketName::parse)))]
    #[schema(
        example = "Will it rain in Paris on 2027-01-01?",
        min_length = 3,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]+[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Up to 5,000 characters.
    #[garde(custom(parses_if_present(MarketDescription::parse)))]
    #[serde(default)]
    #[schema(
        max_length = 5000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub description: Option<String>,
    /// A slug: lower-case letters, digits and `-`, 1 to 50 characters.
    #[garde(custom(parses(Category::parse)))]
    #[schema(example = "weather", pattern = "^[a-z0-9-]{1,50}$")]
    pub category: String,
    /// When trading ends (RFC 3339); must be in the future.
    #[garde(skip)]
    pub end_date: DateTime<Utc>,
    /// The creator's own first position.
    #[garde(dive)]
    #[serde(default)]
    pub initial_position: Option<super::positions::OpenPositionRequest>,
}

impl CreateMarketRequest {
    pub fn into_parts(
        self,
    ) -> Result<(MarketDraft, Option<application::markets::InitialPosition>), ApiError> {
        let initial = self
            .initial_position
            .map(|position| {
                position
                    .into_order()
                    .map(|order| application::markets::InitialPosition {
                        side: order.side,
                        stake: order.stake,
                    })
            })
            .transpose()?;
        let draft = MarketContentRequest {
            name: self.name,
            description: self.description,
            category: self.category,
            end_date: self.end_date,
        }
        .into_draft()?;
        Ok((draft, initial))
    }
}

/// `PATCH /api/v1/markets/{id}`: any subset of fields. `status` (with `outcome` when resolving)
/// needs a moderator or admin.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct MarketPatchRequest {
    /// The question, 3 to 200 characters.
    #[garde(custom(parses_if_present(MarketName::parse)))]
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        min_length = 3,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]+[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Up to 5,000 characters.
    #[garde(custom(parses_if_present(MarketDescription::parse)))]
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        max_length = 5000,
        pattern = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
    )]
    pub description: Option<String>,
    /// A slug: lower-case letters, digits and `-`, 1 to 50 characters.
    #[garde(custom(parses_if_present(Category::parse)))]
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false, pattern = "^[a-z0-9-]{1,50}$")]
    pub category: Option<String>,
    /// When trading ends (RFC 3339); must be in the future.
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub end_date: Option<DateTime<Utc>>,
    /// `closed`, `resolved` or `cancelled` (`active` is a status too, but no market can be set
    /// back to it: 409).
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, example = "resolved", pattern = "^(active|closed|resolved|cancelled)$")]
    pub status: Option<MarketStatus>,
    /// `yes` or `no`; required with `"status": "resolved"`, refused otherwise.
    #[garde(skip)]
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = false, example = "yes", pattern = "^(yes|no)$")]
    pub outcome: Option<Outcome>,
}

impl MarketPatchRequest {
    pub fn into_changes(self) -> Result<MarketChanges, ApiError> {
        let mut problems = Problems::default();
        if self.outcome.is_some() && self.status.is_none() {
            problems.push(
                "outcome",
                "an outcome is only given with \"status\": \"resolved\"",
            );
        }
        let changes = MarketChanges {
            name: problems.take("name", self.name.as_deref(), MarketName::parse),
            description: problems.take(
                "description",
                self.description.as_deref(),
                MarketDescription::parse,
            ),
            category: problems.take("category", self.category.as_deref(), Category::parse),
            end_date: self.end_date,
            status: self.status.map(|status| StatusChange {
                status,
                outcome: self.outcome,
            }),
        };
        if problems.is_empty() && changes == MarketChanges::default() {
            problems.push("body", "name at least one field to change");
        }
        problems.into_result(changes)
    }
}

/// Invalid fields found so far, so that one response reports all of them.
#[derive(Default)]
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    pub(crate) fn push(&mut self, field: &str, message: impl std::fmt::Display) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.to_string(),
        });
    }

    /// Parses an optional value, noting a failure under `field`.
    pub(crate) fn take<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match value.map(parse).transpose() {
            Ok(parsed) => parsed,
            Err(error) => {
                self.push(field, error);
                None
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ApiError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

pub(crate) fn whole_number(text: &str) -> Result<u64, &'static str> {
    text.parse().map_err(|_| "must be a whole number")
}

fn instant(text: &str) -> Result<DateTime<Utc>, &'static str> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 timestamp such as 2027-01-01T00:00:00Z")
}

/// A market. In lists with `fields=`, only the requested fields (and `id`) are present.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarketResponse {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `active`, `closed`, `resolved` or `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "active")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<Uuid>,
    /// Credits on `yes`, a decimal string with two places.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "120.00")]
    pub yes_volume: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "80.00")]
    pub no_volume: Option<String>,
    /// `yes_volume + no_volume`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "200.00")]
    pub volume: Option<String>,
    /// `yes` or `no` once resolved; `null` before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub outcome: Option<Option<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub image_url: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub thumbnail_url: Option<Option<String>>,
    /// Incremented by every change; also the `ETag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// The creator's public profile, with `include=creator`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<super::users::UserResponse>,
}

impl From<MarketProjection> for MarketResponse {
    fn from(market: MarketProjection) -> Self {
        let amount = |a: Option<Amount>| a.map(|a| a.to_string());
        Self {
            id: market.id.as_uuid(),
            name: market.name.map(|n| n.as_str().to_owned()),
            description: market.description.map(|d| d.as_str().to_owned()),
            category: market.category.map(|c| c.as_str().to_owned()),
            status: market.status.map(|s| s.as_str().to_owned()),
            end_date: market.end_date,
            creator_id: market.creator_id.map(|id| id.as_uuid()),
            yes_volume: amount(market.yes_volume),
            no_volume: amount(market.no_volume),
            volume: amount(market.volume),
            outcome: market.outcome.map(|o| o.map(Outcome::as_str)),
            image_url: market.image_url,
            thumbnail_url: market.thumbnail_url,
            version: market.version,
            created_at: market.created_at,
            updated_at: market.updated_at,
            creator: None,
        }
    }
}

impl From<&Market> for MarketResponse {
    fn from(market: &Market) -> Self {
        MarketProjection::of(market, &FieldSet::all()).into()
    }
}

/// Query parameters of `GET /api/v1/markets`. All are optional; unknown parameters are refused.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MarketListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (default 0, at most 1,000,000). Not together with `page`.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    pub offset: Option<String>,
    /// 1-based page number, at most 10,001. Not together with `offset`.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10_001)]
    pub page: Option<String>,
    /// Comma-separated sort keys, `-` for descending, from `created_at`, `updated_at`,
    /// `end_date`, `volume`, `name` (at most 4, each once; default `-created_at`). Ties are broken
    /// by id.
    #[param(
        pattern = "^-?(created_at|updated_at|end_date|volume|name)(,-?(created_at|updated_at|end_date|volume|name)){0,3}$"
    )]
    pub sort: Option<String>,
    /// Comma-separated fields to return (`id` is always included).
    #[param(
        pattern = "^(id|name|description|category|status|end_date|creator_id|yes_volume|no_volume|volume|outcome|image_url|thumbnail_url|version|created_at|updated_at)(,(id|name|description|category|status|end_date|creator_id|yes_volume|no_volume|volume|outcome|image_url|thumbnail_url|version|created_at|updated_at))*$"
    )]
    pub fields: Option<String>,
    /// `active`, `closed`, `resolved` or `cancelled`.
    #[param(pattern = "^(active|closed|resolved|cancelled)$")]
    pub status: Option<String>,
    /// A category slug.
    #[param(pattern = "^[a-z0-9-]{1,50}$")]
    pub category: Option<String>,
    /// A user id.
    #[param(value_type = Option<Uuid>)]
    pub creator_id: Option<String>,
    /// Total volume at least this, e.g. `100.00`.
    #[param(pattern = "^[0-9]{1,12}(\\.[0-9]{1,2})?$")]
    pub min_volume: Option<String>,
    /// End date strictly before this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub end_before: Option<String>,
    /// End date strictly after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub end_after: Option<String>,
    /// Case-insensitive text in the name or description, 1 to 100 characters, not blank.
    #[param(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub q: Option<String>,
    /// `creator`: each market's creator, loaded with one more query whatever the page size.
    #[param(pattern = "^creator$")]
    pub include: Option<String>,
}

impl MarketListParams {
    /// Parses every parameter, reporting every invalid one at once; also whether the creators
    /// are to be included.
    pub fn into_query(self) -> Result<(MarketListQuery, bool), ApiError> {
        let mut problems = Problems::default();
        let include_creator = problems
            .take("include", self.include.as_deref(), |t| {
                (t == "creator")
                    .then_some(true)
                    .ok_or("the only inclusion is 'creator'")
            })
            .unwrap_or(false);
        let limit = problems.take("limit", self.limit.as_deref(), whole_number);
        let offset = problems.take("offset", self.offset.as_deref(), whole_number);
        let page_number = problems.take("page", self.page.as_deref(), whole_number);
        let query = MarketListQuery {
            filter: MarketFilter {
                status: problems.take("status", self.status.as_deref(), |t| {
                    MarketStatus::parse(t)
                        .map_err(|_| "must be one of active, closed, resolved, cancelled")
                }),
                category: problems.take("category", self.category.as_deref(), Category::parse),
                creator_id: problems.take("creator_id", self.creator_id.as_deref(), |t| {
                    t.parse::<domain::UserId>().map_err(|_| "must be a UUID")
                }),
                min_volume: problems.take("min_volume", self.min_volume.as_deref(), Amount::parse),
                end_before: problems.take("end_before", self.end_before.as_deref(), instant),
                end_after: problems.take("end_after", self.end_after.as_deref(), instant),
                text: problems.take("q", self.q.as_deref(), SearchText::parse),
            },
            sort: problems
                .take("sort", self.sort.as_deref(), MarketSort::parse)
                .unwrap_or_default(),
            page: window(limit, offset, page_number, &mut problems),
            fields: problems
                .take("fields", self.fields.as_deref(), FieldSet::parse)
                .unwrap_or_default(),
        };
        problems.into_result((query, include_creator))
    }
}

/// The last page number accepted, whatever the page size: its rows start within
/// [`PageRequest::MAX_OFFSET`] even at the largest `limit` (so the bound fits in the document).
pub(crate) const MAX_PAGE: u64 = PageRequest::MAX_OFFSET / PageRequest::MAX_LIMIT + 1;

/// The page window from `limit` and either `offset` or `page`.
pub(crate) fn window(
    limit: Option<u64>,
    offset: Option<u64>,
    page: Option<u64>,
    problems: &mut Problems,
) -> PageRequest {
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    let (field, offset) = match (offset, page) {
        (Some(_), Some(_)) => {
            problems.push("page", "give either page or offset, not both");
            return PageRequest::default();
        }
        (None, Some(0)) => {
            problems.push("page", "pages start at 1");
            return PageRequest::default();
        }
        (None, Some(page)) if page > MAX_PAGE => {
            problems.push("page", format!("pages go up to {MAX_PAGE}"));
            return PageRequest::default();
        }
        (None, Some(page)) => ("page", (page - 1).saturating_mul(limit)),
        (Some(offset), None) => ("offset", offset),
        (None, None) => ("offset", 0),
    };
    PageRequest::new(limit, offset).unwrap_or_else(|error| {
        match error {
            PageError::LimitOutOfRange { .. } => problems.push("limit", &error),
            PageError::OffsetTooLarge { .. } => problems.push(field, &error),
        }
        PageRequest::default()
    })
}
