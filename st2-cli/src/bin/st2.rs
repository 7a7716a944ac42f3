//! The `st2` client.
fn main() {}
