//! Admin API types (`/admin/v1/...`), one module per resource.

pub mod audit;
pub mod clock;
pub mod consents;
pub mod dsr;
pub mod events;
pub mod incidents;
pub mod overview;
pub mod retention;
pub mod subprocessors;
pub mod tenants;
pub mod throughput;
pub mod traffic;
