//! c24-console.
