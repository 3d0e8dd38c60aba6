//! ggcore plugin ABI (see issue 4).
