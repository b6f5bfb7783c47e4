// SPDX-License-Identifier: GPL-2.0

//! The wrappers of kernel types: one file per type, the only place besides
//! the C entry points (`entry.rs`) where `unsafe` lives.  Nothing here
//! calls the logic above it.

mod error;
mod helpers;
mod msg;
mod param;
mod path;
mod ring;
mod scm;
mod seq_file;
mod skb;
mod sock;
mod sockopt;
mod sync;

pub(crate) use error::*;
pub(crate) use helpers::*;
pub(crate) use msg::*;
pub(crate) use param::*;
pub(crate) use path::*;
pub(crate) use ring::*;
pub(crate) use scm::*;
pub(crate) use seq_file::*;
pub(crate) use skb::*;
pub(crate) use sock::*;
pub(crate) use sockopt::*;
pub(crate) use sync::*;
