//! End-to-end journeys across the eCRM suite; everything is in `tests/`.
