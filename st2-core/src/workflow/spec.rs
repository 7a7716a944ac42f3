//! See [`super`]: to be written.
