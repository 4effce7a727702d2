//! `c24-console`: the ratatui admin console over the chat core's admin API.
//!
//! Laid out like gitui, with bottom's data flow: background tasks fetch,
//! a store holds ready-to-draw rows, views only read the store.
//!
//! - [`app`]: the state (view in front, input mode) and the key → action →
//!   effect wiring. [`action`]: what views ask for.
//! - [`keymap`]: the one keymap, overridable from the config file; it also
//!   generates the help screen. [`theme`]: the one theme (and `NO_COLOR`).
//! - [`store`]: what the views read, with a version counter and each
//!   feed's age. [`source`]: the event stream and the poller feeding it.
//! - [`views`]: one component per view. [`widgets`]: shared drawing helpers.
//! - [`run`]: the terminal loop (and the one-shot snapshot).
//!   [`snapshot`]: rendering a view to text.
//! - [`config`]: the contexts file. [`demo`]: `--demo`'s embedded core.
//! - [`format`]: numbers, sizes, dates, and `--redact`'s masking.
//!   [`fixtures`]: fixed data for snapshot tests and benchmarks.
//!
//! The console talks to a core only through `c24-api` over the network;
//! `--demo` starts one in-process through `c24_chatcore::start` and then
//! does the same.

pub mod action;
pub mod app;
pub mod config;
pub mod demo;
pub mod fixtures;
pub mod format;
pub mod keymap;
pub mod run;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod theme;
pub mod views;
pub mod widgets;
