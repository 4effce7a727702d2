//! Small drawing helpers shared by the views: panels that carry their
//! data's age in the title, text sparklines for table cells, popups.

pub mod panel;
pub mod popup;
pub mod spark;
