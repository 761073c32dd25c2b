//! Canopy's Zellij sidebar. Everything here is pure logic that also compiles natively,
//! so it is unit-tested without Zellij; `main.rs` (wasm32 only) feeds Zellij's events
//! in and carries the effects out.
//!
//! # Layout
//! - [`model`]: the host's JSON (`canopy status --json`, `canopy watch --json`,
//!   `canopy diff --stat --json`) as read here
//! - [`app`]: the state machine: inputs (events, keys, command results) → effects
//! - [`view`]: renders the state into a frame of exactly `rows × cols` cells
//! - [`text`]: width-safe truncation and padding

pub mod app;
pub mod model;
pub mod text;
pub mod view;

#[cfg(test)]
mod tests;
