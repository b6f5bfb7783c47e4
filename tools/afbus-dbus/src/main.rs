// SPDX-License-Identifier: GPL-2.0

//! afbus-dbus: the D-Bus master of an AF_BUS bus, and a few client commands.

fn main() {}
