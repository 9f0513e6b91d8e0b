//! The SQL of a market listing: `MarketFilter` as a condition, `MarketSort` plus the id tie-break
//! as the order, `PageRequest` as LIMIT/OFFSET, and only the columns of the `FieldSet`.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use domain::listing::{MarketFilter, MarketListQuery, MarketSortKey, SearchText};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, SelectStatement};
use sea_orm::{Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait};

use crate::entity::markets::{self, Column};
use crate::listing::{TOTAL, order, window};
use crate::mapper::market::column;

/// The character that makes the next `%`, `_` or itself literal in a LIKE pattern.
const LIKE_ESCAPE: char = '\\';

/// One page of the matching markets, holding the requested columns.
pub(crate) fn page(query: &MarketListQuery) -> SelectStatement {
    let mut select = markets::Entity::find()
        .select_only()
        .columns(query.fields.fields().iter().map(|&field| column(field)))
        .filter(condition(&query.filter));
    for &(key, direction) in query.sort.keys() {
        select = select.order_by(sort_column(key), order(direction));
    }
    window(select.order_by(Column::Id, Order::Asc), query.page).into_query()
}

/// The number of matching markets, as one `total` column.
pub(crate) fn count(filter: &MarketFilter) -> SelectStatement {
    markets::Entity::find()
        .select_only()
        .column_as(Expr::col((markets::Entity, Column::Id)).count(), TOTAL)
        .filter(condition(filter))
        .into_query()
}

/// Every present condition of `filter`, joined with AND.
fn condition(filter: &MarketFilter) -> Condition {
    let column = |column: Column| Expr::col((markets::Entity, column));
    Condition::all()
        .add_option(
            filter
                .status
                .map(|status| column(Column::Status).eq(status.as_str())),
        )
        .add_option(
            filter
                .category
                .as_ref()
                .map(|category| column(Column::Category).eq(category.as_str())),
        )
        .add_option(
            filter
                .creator_id
                .map(|creator| column(Column::CreatorId).eq(creator.as_uuid())),
        )
        .add_option(
            filter
                .min_volume
                .map(|volume| column(Column::VolumeCents).gte(volume.cents())),
        )
        .add_option(
            filter
                .end_before
                .map(|end| column(Column::EndDate).lt(microsecond_after(end))),
        )
        .add_option(
            filter
                .end_after
                .map(|end| column(Column::EndDate).gt(microsecond_before(end))),
        )
        .add_option(filter.text.as_ref().map(text_condition))
}

/// The first whole microsecond at or after `time`.
///
/// Stored times are whole microseconds, so `stored < time` exactly when `stored <` this; the bound
/// is rounded here because PostgreSQL would truncate it (and wrongly exclude `time`'s microsecond).
fn microsecond_after(time: DateTime<Utc>) -> DateTime<Utc> {
    let truncated = time.trunc_subsecs(6);
    if truncated < time {
        truncated + TimeDelta::microseconds(1)
    } else {
        truncated
    }
}

/// The last whole microsecond at or before `time`: `stored > time` exactly when `stored >` this.
fn microsecond_before(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

/// `text` anywhere in the name or the description, ignoring ASCII case.
///
/// Both sides are lower-cased the same way on every database: the pattern by Rust's ASCII rule,
/// the columns by `LOWER()`, which folds only ASCII on SQLite and on PostgreSQL's `"C"` collation
/// of these columns.
fn text_condition(text: &SearchText) -> Condition {
    let pattern = format!("%{}%", escape_like(&text.as_str().to_ascii_lowercase()));
    let contains = |column: Column| {
        Expr::expr(Func::lower(Expr::col((markets::Entity, column))))
            .like(LikeExpr::new(pattern.clone()).escape(LIKE_ESCAPE))
    };
    Condition::any()
        .add(contains(Column::Name))
        .add(contains(Column::Description))
}

/// `text` with the LIKE wildcards `%` and `_` (and the escape character) made literal.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '%' | '_' | LIKE_ESCAPE) {
            escaped.push(LIKE_ESCAPE);
        }
        escaped.push(character);
    }
    escaped
}

const fn sort_column(key: MarketSortKey) -> Column {
    match key {
        MarketSortKey::CreatedAt => Column::CreatedAt,
        MarketSortKey::UpdatedAt => Column::UpdatedAt,
        MarketSortKey::EndDate => Column::EndDate,
        MarketSortKey::Volume => Column::VolumeCents,
        MarketSortKey::Name => Column::Name,
    }
}

#[cfg(test)]
mod tests {
    use domain::listing::{FieldSet, MarketSort, PageRequest};
    use sea_orm::{DbBackend, Value};

    use super::*;

    #[test]
    fn only_the_requested_columns_are_selected_and_the_search_text_is_bound() {
        let query = MarketListQuery {
            filter: MarketFilter {
                text: SearchText::parse("50%_Off").ok(),
                ..MarketFilter::default()
            },
            sort: MarketSort::parse("-volume").unwrap_or_default(),
            page: PageRequest::default(),
            fields: FieldSet::parse("name,volume").unwrap_or_default(),
        };
        let statement = DbBackend::Postgres.build(&page(&query));
        assert_eq!(
            statement.sql,
            r#"SELECT "markets"."id", "markets"."name", "markets"."volume_cents" FROM "markets" WHERE LOWER("markets"."name") LIKE $1 ESCAPE E'\\' OR LOWER("markets"."description") LIKE $2 ESCAPE E'\\' ORDER BY "markets"."volume_cents" DESC, "markets"."id" ASC LIMIT $3 OFFSET $4"#
        );
        let pattern = Value::String(Some(r"%50\%\_off%".to_owned()));
        assert_eq!(
            statement.values.map(|values| values.0),
            Some(vec![
                pattern.clone(),
                pattern,
                Value::BigUnsigned(Some(20)),
                Value::BigUnsigned(Some(0)),
            ])
        );
    }

    #[test]
    fn like_wildcards_in_search_text_are_literal() {
        assert_eq!(escape_like(r"50%_off\now"), r"50\%\_off\\now");
        assert_eq!(escape_like("rain"), "rain");
    }
}
