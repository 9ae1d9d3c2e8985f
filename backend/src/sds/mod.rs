//! Envoy Secret Discovery Service (being written).
