// SPDX-License-Identifier: GPL-2.0

//! libFuzzer target: `struct sockaddr_bus` parsing in both layouts.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::check_addr(data));
