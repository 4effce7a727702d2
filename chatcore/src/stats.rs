//! Live throughput statistics (being written).
