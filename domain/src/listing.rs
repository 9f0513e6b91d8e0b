//! Listing markets: filters, whitelisted sort keys, pagination and sparse field sets, as types
//! that every `MarketRepository` adapter must honour in the same way.

use chrono::{DateTime, Utc};

use crate::id::{MarketId, UserId};
use crate::market::{Category, Market, MarketDescription, MarketName, MarketStatus, Outcome};
use crate::money::Amount;

/// Why a page request is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be between 1 and {max}")]
    LimitOutOfRange { max: u64 },
    #[error("offset must be at most {max}")]
    OffsetTooLarge { max: u64 },
}

/// A window of a list: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    limit: u64,
    offset: u64,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u64 = 20;
    pub const MAX_LIMIT: u64 = 100;
    /// Deep offsets make the database scan and drop rows; past this, clients should filter.
    pub const MAX_OFFSET: u64 = 1_000_000;

    /// # Errors
    /// [`PageError`] when `limit` is not in `1..=100` or `offset` is above [`Self::MAX_OFFSET`].
    pub fn new(limit: u64, offset: u64) -> Result<Self, PageError> {
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(PageError::LimitOutOfRange {
                max: Self::MAX_LIMIT,
            });
        }
        if offset > Self::MAX_OFFSET {
            return Err(PageError::OffsetTooLarge {
                max: Self::MAX_OFFSET,
            });
        }
        Ok(Self { limit, offset })
    }

    #[must_use]
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    #[must_use]
    pub const fn offset(&self) -> u64 {
        self.offset
    }

    /// The 1-based page number this window starts on.
    #[must_use]
    pub const fn page(&self) -> u64 {
        self.offset / self.limit + 1
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// One page of a list and the total number of matching rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub request: PageRequest,
}

impl<T> Page<T> {
    /// The same page with every item converted.
    pub fn map<U>(self, convert: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(convert).collect(),
            total: self.total,
            request: self.request,
        }
    }
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

/// A field a list may be sorted by: a closed whitelist per resource.
pub trait SortKey: Copy + Eq + 'static {
    /// Every key, in the order error messages list them.
    const ALL: &'static [Self];
    /// The order used when the client gives none.
    const DEFAULT: &'static [(Self, SortDirection)];

    /// The key's name in `sort=`.
    fn as_str(self) -> &'static str;
}

/// The fields markets may be sorted by. Anything else is rejected before it reaches storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarketSortKey {
    CreatedAt,
    UpdatedAt,
    EndDate,
    Volume,
    Name,
}

impl SortKey for MarketSortKey {
    const ALL: &'static [Self] = &[
        Self::CreatedAt,
        Self::UpdatedAt,
        Self::EndDate,
        Self::Volume,
        Self::Name,
    ];
    /// Newest first.
    const DEFAULT: &'static [(Self, SortDirection)] =
        &[(Self::CreatedAt, SortDirection::Descending)];

    fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::EndDate => "end_date",
            Self::Volume => "volume",
            Self::Name => "name",
        }
    }
}

/// The fields positions may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PositionSortKey {
    CreatedAt,
    Amount,
}

impl SortKey for PositionSortKey {
    const ALL: &'static [Self] = &[Self::CreatedAt, Self::Amount];
    /// Newest first.
    const DEFAULT: &'static [(Self, SortDirection)] =
        &[(Self::CreatedAt, SortDirection::Descending)];

    fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::Amount => "amount",
        }
    }
}

/// Why a sort specification is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortError {
    #[error("cannot sort by '{field}'; allowed: {allowed}")]
    UnknownField { field: String, allowed: String },
    #[error("'{0}' appears more than once")]
    Repeated(String),
    #[error("at most {max} sort fields")]
    TooMany { max: usize },
}

/// An ordered list of sort keys. Every adapter breaks remaining ties by id, ascending, so that
/// pages are stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort<K>(Vec<(K, SortDirection)>);

/// The order of a market list.
pub type MarketSort = Sort<MarketSortKey>;
/// The order of a position list.
pub type PositionSort = Sort<PositionSortKey>;

impl<K: SortKey> Sort<K> {
    pub const MAX_KEYS: usize = 4;

    /// Parses `-volume,created_at`: comma-separated keys, `-` for descending.
    ///
    /// # Errors
    /// [`SortError`] for an unknown or repeated key, an empty segment, or more than four keys.
    pub fn parse(text: &str) -> Result<Self, SortError> {
        let mut keys: Vec<(K, SortDirection)> = Vec::new();
        for segment in text.split(',') {
            let (name, direction) = match segment.strip_prefix('-') {
                Some(rest) => (rest, SortDirection::Descending),
                None => (segment, SortDirection::Ascending),
            };
            let key = K::ALL
                .iter()
                .copied()
                .find(|key| key.as_str() == name)
                .ok_or_else(|| SortError::UnknownField {
                    field: segment.chars().take(50).collect(),
                    allowed: K::ALL
                        .iter()
                        .map(|key| key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if keys.iter().any(|(seen, _)| *seen == key) {
                return Err(SortError::Repeated(name.to_owned()));
            }
            if keys.len() == Self::MAX_KEYS {
                return Err(SortError::TooMany {
                    max: Self::MAX_KEYS,
                });
            }
            keys.push((key, direction));
        }
        Ok(Self(keys))
    }

    #[must_use]
    pub fn keys(&self) -> &[(K, SortDirection)] {
        &self.0
    }
}

impl<K: SortKey> Default for Sort<K> {
    fn default() -> Self {
        Self(K::DEFAULT.to_vec())
    }
}

/// Conditions a market must meet to be listed; all present conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketFilter {
    pub status: Option<MarketStatus>,
    pub category: Option<Category>,
    pub creator_id: Option<UserId>,
    /// Total volume at least this.
    pub min_volume: Option<Amount>,
    /// End date strictly before this.
    pub end_before: Option<DateTime<Utc>>,
    /// End date strictly after this.
    pub end_after: Option<DateTime<Utc>>,
    /// Case-insensitive (ASCII) substring of the name or description; `%` and `_` are literal.
    pub text: Option<SearchText>,
}

/// Why a search text is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchTextError {
    #[error("must be 1 to {max} characters")]
    Length { max: usize },
    #[error("must not contain control characters")]
    ControlCharacters,
}

/// A bounded free-text filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    pub const MAX_LEN: usize = 100;

    /// # Errors
    /// [`SearchTextError`] when blank, longer than 100 characters or containing control
    /// characters.
    pub fn parse(text: &str) -> Result<Self, SearchTextError> {
        let text = text.trim();
        let length = text.chars().count();
        if length == 0 || length > Self::MAX_LEN {
            Err(SearchTextError::Length { max: Self::MAX_LEN })
        } else if text.chars().any(char::is_control) {
            Err(SearchTextError::ControlCharacters)
        } else {
            Ok(Self(text.to_owned()))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A market field a client may ask for with `fields=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarketField {
    Id,
    Name,
    Description,
    Category,
    Status,
    EndDate,
    CreatorId,
    YesVolume,
    NoVolume,
    Volume,
    Outcome,
    ImageUrl,
    ThumbnailUrl,
    Version,
    CreatedAt,
    UpdatedAt,
}

impl MarketField {
    pub const ALL: [Self; 16] = [
        Self::Id,
        Self::Name,
        Self::Description,
        Self::Category,
        Self::Status,
        Self::EndDate,
        Self::CreatorId,
        Self::YesVolume,
        Self::NoVolume,
        Self::Volume,
        Self::Outcome,
        Self::ImageUrl,
        Self::ThumbnailUrl,
        Self::Version,
        Self::CreatedAt,
        Self::UpdatedAt,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::Description => "description",
            Self::Category => "category",
            Self::Status => "status",
            Self::EndDate => "end_date",
            Self::CreatorId => "creator_id",
            Self::YesVolume => "yes_volume",
            Self::NoVolume => "no_volume",
            Self::Volume => "volume",
            Self::Outcome => "outcome",
            Self::ImageUrl => "image_url",
            Self::ThumbnailUrl => "thumbnail_url",
            Self::Version => "version",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    /// # Errors
    /// [`UnknownField`] for a name that is not a market field.
    pub fn parse(text: &str) -> Result<Self, UnknownField> {
        Self::ALL
            .into_iter()
            .find(|field| field.as_str() == text)
            .ok_or_else(|| UnknownField(text.chars().take(50).collect()))
    }
}

/// A `fields=` entry that names no market field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field '{0}'")]
pub struct UnknownField(pub String);

/// The set of fields to load. `id` is always included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSet(Vec<MarketField>);

impl FieldSet {
    /// Every field.
    #[must_use]
    pub fn all() -> Self {
        Self(MarketField::ALL.to_vec())
    }

    /// Parses `id,name,volume`; duplicates are ignored, `id` is added.
    ///
    /// # Errors
    /// [`UnknownField`] for the first name that is not a market field.
    pub fn parse(text: &str) -> Result<Self, UnknownField> {
        let mut fields = vec![MarketField::Id];
        for name in text.split(',') {
            let field = MarketField::parse(name.trim())?;
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        Ok(Self(fields))
    }

    /// The same set with `field` added.
    #[must_use]
    pub fn with(mut self, field: MarketField) -> Self {
        if !self.0.contains(&field) {
            self.0.push(field);
        }
        self
    }

    #[must_use]
    pub fn contains(&self, field: MarketField) -> bool {
        self.0.contains(&field)
    }

    #[must_use]
    pub fn fields(&self) -> &[MarketField] {
        &self.0
    }
}

impl Default for FieldSet {
    fn default() -> Self {
        Self::all()
    }
}

/// What to list: filter, order, window and fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketListQuery {
    pub filter: MarketFilter,
    pub sort: MarketSort,
    pub page: PageRequest,
    pub fields: FieldSet,
}

/// Conditions a position must meet to be listed; all present conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionFilter {
    pub market_id: Option<MarketId>,
    pub user_id: Option<UserId>,
    pub side: Option<crate::position::Side>,
}

/// What positions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionListQuery {
    pub filter: PositionFilter,
    pub sort: PositionSort,
    pub page: PageRequest,
}

/// Why an email prefix filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailPrefixError {
    #[error("must be 1 to {max} characters without spaces")]
    OutOfRange { max: usize },
}

/// The start of an email address, lower-cased like [`crate::Email`], to filter users by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailPrefix(String);

impl EmailPrefix {
    /// # Errors
    /// [`EmailPrefixError`] when the text is empty, longer than an email may be, or has whitespace
    /// or control characters (anywhere: nothing is trimmed).
    pub fn parse(text: &str) -> Result<Self, EmailPrefixError> {
        let max = crate::user::Email::MAX_LEN;
        if text.is_empty()
            || text.chars().count() > max
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(EmailPrefixError::OutOfRange { max });
        }
        Ok(Self(text.to_lowercase()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Conditions a user must meet to be listed; all present conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub role: Option<crate::user::Role>,
    pub email_prefix: Option<EmailPrefix>,
}

/// What users to list: always oldest first (ties by id), one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserListQuery {
    pub filter: UserFilter,
    pub page: PageRequest,
}

/// A market with only the requested fields loaded: `id` always, each other field `Some` when it
/// was selected.
/// `outcome`, `image_url` and `thumbnail_url` are nullable, hence the nested `Option`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketProjection {
    pub id: MarketId,
    pub name: Option<MarketName>,
    pub description: Option<MarketDescription>,
    pub category: Option<Category>,
    pub status: Option<MarketStatus>,
    pub end_date: Option<DateTime<Utc>>,
    pub creator_id: Option<UserId>,
    pub yes_volume: Option<Amount>,
    pub no_volume: Option<Amount>,
    pub volume: Option<Amount>,
    pub outcome: Option<Option<Outcome>>,
    pub image_url: Option<Option<String>>,
    pub thumbnail_url: Option<Option<String>>,
    pub version: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl MarketProjection {
    /// Keeps from a whole market the fields in `fields`. Adapters that load whole rows use this;
    /// SQL adapters select only the columns instead.
    #[must_use]
    pub fn of(market: &Market, fields: &FieldSet) -> Self {
        let pick = |field| fields.contains(field);
        Self {
            id: market.id,
            name: pick(MarketField::Name).then(|| market.name.clone()),
            description: pick(MarketField::Description).then(|| market.description.clone()),
            category: pick(MarketField::Category).then(|| market.category.clone()),
            status: pick(MarketField::Status).then_some(market.status),
            end_date: pick(MarketField::EndDate).then_some(market.end_date),
            creator_id: pick(MarketField::CreatorId).then_some(market.creator_id),
            yes_volume: pick(MarketField::YesVolume).then_some(market.yes_volume),
            no_volume: pick(MarketField::NoVolume).then_some(market.no_volume),
            volume: pick(MarketField::Volume).then(|| market.volume()),
            outcome: pick(MarketField::Outcome).then_some(market.outcome),
            image_url: pick(MarketField::ImageUrl).then(|| market.image_url.clone()),
            thumbnail_url: pick(MarketField::ThumbnailUrl).then(|| market.thumbnail_url.clone()),
            version: pick(MarketField::Version).then_some(market.version),
            created_at: pick(MarketField::CreatedAt).then_some(market.created_at),
            updated_at: pick(MarketField::UpdatedAt).then_some(market.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_specifications_are_parsed_in_order() {
        let sort = MarketSort::parse("-volume,created_at").map(|s| s.keys().to_vec());
        assert_eq!(
            sort,
            Ok(vec![
                (MarketSortKey::Volume, SortDirection::Descending),
                (MarketSortKey::CreatedAt, SortDirection::Ascending),
            ])
        );
    }

    #[test]
    fn unknown_repeated_or_too_many_sort_fields_are_rejected() {
        assert!(matches!(
            MarketSort::parse("password_hash"),
            Err(SortError::UnknownField { field, .. }) if field == "password_hash"
        ));
        assert!(matches!(
            MarketSort::parse("name;drop table markets"),
            Err(SortError::UnknownField { field, .. }) if field == "name;drop table markets"
        ));
        assert_eq!(
            PositionSort::parse("volume").map_err(|e| e.to_string()),
            Err("cannot sort by 'volume'; allowed: created_at, amount".to_owned())
        );
        assert_eq!(
            MarketSort::parse("volume,-volume"),
            Err(SortError::Repeated("volume".into()))
        );
        assert!(matches!(
            MarketSort::parse(""),
            Err(SortError::UnknownField { field, .. }) if field.is_empty()
        ));
        assert_eq!(
            MarketSort::parse("name,volume,end_date,created_at,updated_at"),
            Err(SortError::TooMany { max: 4 })
        );
    }

    #[test]
    fn page_bounds_are_explicit() {
        assert!(PageRequest::new(0, 0).is_err());
        assert!(PageRequest::new(101, 0).is_err());
        assert!(PageRequest::new(1, PageRequest::MAX_OFFSET + 1).is_err());
        let page = PageRequest::new(20, 40).unwrap_or_default();
        assert_eq!(page.page(), 3);
    }

    #[test]
    fn field_sets_always_include_the_id() {
        let fields = FieldSet::parse("name,volume,name").unwrap_or_default();
        assert_eq!(
            fields.fields(),
            &[MarketField::Id, MarketField::Name, MarketField::Volume]
        );
        assert_eq!(
            FieldSet::parse("name,secret"),
            Err(UnknownField("secret".into()))
        );
    }

    #[test]
    fn search_text_is_bounded() {
        assert!(SearchText::parse(" ").is_err());
        assert!(SearchText::parse(&"q".repeat(101)).is_err());
        assert!(SearchText::parse("a\0").is_err());
        assert!(SearchText::parse("rain").is_ok());
    }
}
