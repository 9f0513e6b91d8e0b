//! Pages: the `offset..offset + limit` window of a sorted list, with the total, as SQL's `LIMIT`/`OFFSET` and `COUNT(*)` give it.

use domain::listing::{Page, PageRequest};

/// The window `request` asks for over every sorted match, and the number of matches.
pub(crate) fn window<T>(matching: Vec<T>, request: PageRequest) -> Page<T> {
    let total = u64::try_from(matching.len()).unwrap_or(u64::MAX);
    let offset = usize::try_from(request.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(request.limit()).unwrap_or(usize::MAX);
    Page {
        items: matching.into_iter().skip(offset).take(limit).collect(),
        total,
        request,
    }
}
