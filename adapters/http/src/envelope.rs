//! The response envelope: `{success, data, meta}` on success (errors are rendered in `error.rs`).

use serde::Serialize;
use utoipa::ToSchema;

/// A successful response: `{"success": true, "data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn of(data: T) -> Self {
        Self {
            success: true,
            data,
        }
    }
}

/// A successful list: `{"success": true, "data": [...], "meta": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListEnvelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: Vec<T>,
    pub meta: PageMeta,
}

/// Where a page sits in the whole list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageMeta {
    /// Rows matching the filters, over all pages.
    pub total: u64,
    /// 1-based page number.
    pub page: u64,
    /// Page size.
    pub limit: u64,
}

impl<T> ListEnvelope<T> {
    pub fn of(page: domain::Page<T>) -> Self {
        Self {
            success: true,
            meta: PageMeta {
                total: page.total,
                page: page.request.page(),
                limit: page.request.limit(),
            },
            data: page.items,
        }
    }
}
