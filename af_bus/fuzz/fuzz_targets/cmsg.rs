// SPDX-License-Identifier: GPL-2.0

//! libFuzzer target: the `SOL_BUS` control-message parser.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../props.rs"]
mod props;

fuzz_target!(|data: &[u8]| props::check_cmsgs(data));
