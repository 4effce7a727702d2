//! The admin API (`/admin/v1/...`), one module per resource.

pub mod tenants;
