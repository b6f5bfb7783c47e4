// SPDX-License-Identifier: GPL-2.0

//! The policy-free core of AF_BUS as a host library, for `cargo test`.
//!
//! The module includes the same files; nothing here may call the kernel.

#![no_std]

pub mod addr;
pub mod bloom;
pub mod cmsg;
pub mod meta;
pub mod notify;
pub mod quota;
pub mod ring;
pub mod uapi;
