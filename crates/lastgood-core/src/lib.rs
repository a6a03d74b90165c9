//! lastgood's library: everything but argument parsing and rendering.

pub mod supervise;
pub mod verify;
