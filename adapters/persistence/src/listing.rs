//! What every listing shares: sort directions, the LIMIT/OFFSET window, and the total read off a
//! page when the page shows it.

use domain::listing::{PageRequest, SortDirection};
use domain::ports::RepositoryError;
use sea_orm::sea_query::SelectStatement;
use sea_orm::{ConnectionTrait, Order, QuerySelect};

use crate::error::unavailable;

/// The name of the column a count query returns.
pub(crate) const TOTAL: &str = "total";

pub(crate) const fn order(direction: SortDirection) -> Order {
    match direction {
        SortDirection::Ascending => Order::Asc,
        SortDirection::Descending => Order::Desc,
    }
}

/// `page` as LIMIT and OFFSET.
pub(crate) fn window<S: QuerySelect>(select: S, page: PageRequest) -> S {
    select.limit(page.limit()).offset(page.offset())
}

/// The total when the page itself shows it: a page that is not full is the last one, unless it
/// is empty past the first (the offset may be beyond the end). Saves the count query.
pub(crate) fn total_from_page(page: PageRequest, items: usize) -> Option<u64> {
    let items = u64::try_from(items).ok()?;
    let last_page = items < page.limit() && (items > 0 || page.offset() == 0);
    last_page.then(|| page.offset() + items)
}

/// Runs `count`, a query returning one [`TOTAL`] column.
pub(crate) async fn count<C: ConnectionTrait>(
    connection: &C,
    count: &SelectStatement,
) -> Result<u64, RepositoryError> {
    let row = connection.query_one(count).await.map_err(unavailable)?;
    let total: i64 = match row {
        Some(row) => row.try_get("", TOTAL).map_err(unavailable)?,
        None => 0,
    };
    Ok(u64::try_from(total).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: u64, offset: u64) -> PageRequest {
        PageRequest::new(limit, offset).expect("a valid page")
    }

    #[test]
    fn a_page_that_is_not_full_tells_the_total() {
        assert_eq!(total_from_page(page(10, 0), 0), Some(0));
        assert_eq!(total_from_page(page(10, 20), 3), Some(23));
        assert_eq!(total_from_page(page(10, 20), 10), None);
        assert_eq!(total_from_page(page(10, 20), 0), None);
    }
}
