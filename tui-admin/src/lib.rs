//! `funmagic-admin`: the terminal admin console. An [`app::App`] holds the state and reacts
//! to keys and answers; [`io`] does every API call on a background task (SDK only, no
//! hand-written HTTP); [`ui`] draws a frame from the state without awaiting anything, each
//! screen's part by the screen itself ([`screens`], one file each behind a trait).

pub mod app;
pub mod form;
pub mod io;
pub mod screens;
pub mod ui;
