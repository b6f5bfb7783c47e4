// SPDX-License-Identifier: GPL-2.0

//! D-Bus on AF_BUS: [`AfBus`], the socket a zbus connection runs over, and
//! the master's building blocks (the bloom mapping, header rewriting), and
//! the bridge that joins unmodified D-Bus clients to the bus.
//!
//! A zbus application changes one line, how it builds its connection:
//!
//! ```no_run
//! # async fn f() -> zbus::Result<()> {
//! let conn = zbus::connection::Builder::socket(afbus_dbus::AfBus::system()?)
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

// busctl's address, bloom and socket code, shared rather than copied.
#[allow(dead_code)]
#[path = "../../busctl/src/addr.rs"]
pub mod addr;
#[allow(dead_code)]
#[path = "../../busctl/src/bloom.rs"]
pub mod bloom;
#[allow(dead_code)]
#[path = "../../busctl/src/sys.rs"]
pub mod sys;

pub mod bridge;
pub mod dbloom;
pub mod dgram;
pub mod header;
pub mod master;
pub mod policy;
mod socket;

pub use socket::{
    addr_to_sender, bloom_false_positives, name_to_addr, AfBus, Reader, Writer, BUS_NAME,
    SYSTEM_BUS,
};

// busctl's bloom tests, which run here too, use its demo signal.
#[cfg(test)]
pub(crate) const DEMO_SIGNAL: &[&str] = &[
    "interface=org.example.Echo",
    "member=Changed",
    "path=/org/example/Echo",
    "sender=org.example.Echo",
];
#[cfg(test)]
pub(crate) const DEMO_COLLIDING_MATCH: &str = "member=Changed27566";

/// Parses a bus as users write it: `/a/path` or `@abstract-name`.
pub fn parse_bus(s: &str) -> Result<addr::BusPath, String> {
    addr::BusPath::parse(s)
}

#[cfg(test)]
mod doc {
    /// The worked example of Documentation/af_bus.rst is examples/echo.rs.
    #[test]
    fn the_documented_example_is_the_file() {
        let rst = include_str!("../../../Documentation/af_bus.rst");
        let file = include_str!("../examples/echo.rs");
        let indented: Vec<String> = file
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("    {l}")
                }
            })
            .collect();
        assert!(
            rst.contains(&indented.join("\n")),
            "Documentation/af_bus.rst's copy of examples/echo.rs differs from the file"
        );
    }
}
