//! PURE statistics: tests, effect sizes, classification, scoring.
