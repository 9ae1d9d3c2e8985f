//! Fuzzing the filter's parsers (being written)
