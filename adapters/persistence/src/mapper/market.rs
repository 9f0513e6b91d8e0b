//! `Market` to and from a `markets` row, and `MarketProjection` from a row holding some columns.

use domain::listing::{FieldSet, MarketField, MarketProjection};
use domain::ports::RepositoryError;
use domain::{
    Amount, Category, Market, MarketDescription, MarketId, MarketName, MarketStatus, Outcome,
    UserId,
};
use sea_orm::ActiveValue::Set;
use sea_orm::{IdenStatic, QueryResult, TryGetable};
use uuid::Uuid;

use super::stored;
use crate::entity::markets::{self, Column};
use crate::error::{CorruptRow, unavailable};

const TABLE: &str = "markets";

/// The column that stores `field`.
pub(crate) const fn column(field: MarketField) -> Column {
    match field {
        MarketField::Id => Column::Id,
        MarketField::Name => Column::Name,
        MarketField::Description => Column::Description,
        MarketField::Category => Column::Category,
        MarketField::Status => Column::Status,
        MarketField::EndDate => Column::EndDate,
        MarketField::CreatorId => Column::CreatorId,
        MarketField::YesVolume => Column::YesVolumeCents,
        MarketField::NoVolume => Column::NoVolumeCents,
        MarketField::Volume => Column::VolumeCents,
        MarketField::Outcome => Column::Outcome,
        MarketField::ImageUrl => Column::ImageUrl,
        MarketField::ThumbnailUrl => Column::ThumbnailUrl,
        MarketField::Version => Column::Version,
        MarketField::CreatedAt => Column::CreatedAt,
        MarketField::UpdatedAt => Column::UpdatedAt,
    }
}

/// The row that stores `market`, `volume_cents` included.
pub(crate) fn to_active_model(market: &Market) -> markets::ActiveModel {
    markets::ActiveModel {
        id: Set(market.id.as_uuid()),
        name: Set(market.name.as_str().to_owned()),
        description: Set(market.description.as_str().to_owned()),
        category: Set(market.category.as_str().to_owned()),
        status: Set(market.status.as_str().to_owned()),
        end_date: Set(stored(market.end_date)),
        creator_id: Set(market.creator_id.as_uuid()),
        yes_volume_cents: Set(market.yes_volume.cents()),
        no_volume_cents: Set(market.no_volume.cents()),
        volume_cents: Set(market.volume().cents()),
        outcome: Set(market.outcome.map(|outcome| outcome.as_str().to_owned())),
        image_url: Set(market.image_url.clone()),
        thumbnail_url: Set(market.thumbnail_url.clone()),
        version: Set(market.version),
        created_at: Set(stored(market.created_at)),
        updated_at: Set(stored(market.updated_at)),
    }
}

/// The market a row stores.
///
/// # Errors
/// [`CorruptRow`] when a column does not hold a valid value.
pub(crate) fn to_domain(row: markets::Model) -> Result<Market, CorruptRow> {
    let id = row.id;
    Ok(Market {
        id: MarketId::from_uuid(id),
        name: name(id, &row.name)?,
        description: description(id, &row.description)?,
        category: category(id, &row.category)?,
        status: status(id, &row.status)?,
        end_date: row.end_date,
        creator_id: UserId::from_uuid(row.creator_id),
        yes_volume: amount(id, "yes_volume_cents", row.yes_volume_cents)?,
        no_volume: amount(id, "no_volume_cents", row.no_volume_cents)?,
        outcome: outcome(id, row.outcome.as_deref())?,
        image_url: row.image_url,
        thumbnail_url: row.thumbnail_url,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// The projection a row holding the columns of `fields` (and `id`) stores.
///
/// # Errors
/// [`RepositoryError::Unavailable`] when a selected column is missing from the row or does not
/// hold a valid value.
pub(crate) fn to_projection(
    row: &QueryResult,
    fields: &FieldSet,
) -> Result<MarketProjection, RepositoryError> {
    let id: Uuid = get(row, MarketField::Id)?;
    let mut projection = MarketProjection {
        id: MarketId::from_uuid(id),
        name: None,
        description: None,
        category: None,
        status: None,
        end_date: None,
        creator_id: None,
        yes_volume: None,
        no_volume: None,
        volume: None,
        outcome: None,
        image_url: None,
        thumbnail_url: None,
        version: None,
        created_at: None,
        updated_at: None,
    };
    for &field in fields.fields() {
        match field {
            MarketField::Id => {}
            MarketField::Name => {
                projection.name = Some(name(id, &get::<String>(row, field)?)?);
            }
            MarketField::Description => {
                projection.description = Some(description(id, &get::<String>(row, field)?)?);
            }
            MarketField::Category => {
                projection.category = Some(category(id, &get::<String>(row, field)?)?);
            }
            MarketField::Status => {
                projection.status = Some(status(id, &get::<String>(row, field)?)?);
            }
            MarketField::EndDate => projection.end_date = Some(get(row, field)?),
            MarketField::CreatorId => {
                projection.creator_id = Some(UserId::from_uuid(get(row, field)?));
            }
            MarketField::YesVolume => {
                projection.yes_volume = Some(amount(id, "yes_volume_cents", get(row, field)?)?);
            }
            MarketField::NoVolume => {
                projection.no_volume = Some(amount(id, "no_volume_cents", get(row, field)?)?);
            }
            MarketField::Volume => {
                projection.volume = Some(amount(id, "volume_cents", get(row, field)?)?);
            }
            MarketField::Outcome => {
                let stored: Option<String> = get(row, field)?;
                projection.outcome = Some(outcome(id, stored.as_deref())?);
            }
            MarketField::ImageUrl => projection.image_url = Some(get(row, field)?),
            MarketField::ThumbnailUrl => projection.thumbnail_url = Some(get(row, field)?),
            MarketField::Version => projection.version = Some(get(row, field)?),
            MarketField::CreatedAt => projection.created_at = Some(get(row, field)?),
            MarketField::UpdatedAt => projection.updated_at = Some(get(row, field)?),
        }
    }
    Ok(projection)
}

/// The value of the column of `field` in a partial row.
fn get<T: TryGetable>(row: &QueryResult, field: MarketField) -> Result<T, RepositoryError> {
    row.try_get("", column(field).as_str()).map_err(unavailable)
}

fn name(id: Uuid, stored: &str) -> Result<MarketName, CorruptRow> {
    MarketName::parse(stored).map_err(CorruptRow::at(TABLE, id, "name"))
}

fn description(id: Uuid, stored: &str) -> Result<MarketDescription, CorruptRow> {
    MarketDescription::parse(stored).map_err(CorruptRow::at(TABLE, id, "description"))
}

fn category(id: Uuid, stored: &str) -> Result<Category, CorruptRow> {
    Category::parse(stored).map_err(CorruptRow::at(TABLE, id, "category"))
}

fn status(id: Uuid, stored: &str) -> Result<MarketStatus, CorruptRow> {
    MarketStatus::parse(stored).map_err(CorruptRow::at(TABLE, id, "status"))
}

fn outcome(id: Uuid, stored: Option<&str>) -> Result<Option<Outcome>, CorruptRow> {
    stored
        .map(Outcome::parse)
        .transpose()
        .map_err(CorruptRow::at(TABLE, id, "outcome"))
}

fn amount(id: Uuid, column: &'static str, cents: i64) -> Result<Amount, CorruptRow> {
    Amount::from_cents(cents)
        .ok_or("out of range")
        .map_err(CorruptRow::at(TABLE, id, column))
}
