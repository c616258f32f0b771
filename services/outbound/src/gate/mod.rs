//! The gate: the one function every send path calls, and the only maker of the value a
//! channel is called with.

mod cleared;

pub use cleared::Cleared;
