//! ggcore C Core SDK (being written).
