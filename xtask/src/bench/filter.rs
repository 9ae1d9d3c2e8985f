//! Filter benchmark (being written)
