// SPDX-License-Identifier: GPL-2.0

//! A zbus service and its client over AF_BUS: `echo serve`, `echo call MSG`.

use afbus_dbus::AfBus;
use zbus::connection::Builder;

struct Echo;

#[zbus::interface(name = "org.example.Echo")]
impl Echo {
    fn ping(&self, msg: String) -> String {
        format!("echo: {msg}")
    }
}

#[zbus::proxy(
    interface = "org.example.Echo",
    default_service = "org.example.Echo",
    default_path = "/org/example/Echo"
)]
trait EchoClient {
    fn ping(&self, msg: &str) -> zbus::Result<String>;
}

fn main() -> zbus::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    zbus::block_on(async {
        // On dbus-daemon: Builder::system()?.  On AF_BUS:
        let builder = Builder::socket(AfBus::system()?);
        match args.get(1).map(String::as_str) {
            Some("serve") => {
                let _conn = builder
                    .serve_at("/org/example/Echo", Echo)
                    .name("org.example.Echo")
                    .build()
                    .await?;
                std::future::pending::<()>().await;
            }
            Some("call") => {
                let conn = builder.build().await?;
                let echo = EchoClientProxy::new(&conn).await?;
                let msg = args.get(2).map(String::as_str).unwrap_or("hello");
                println!("{}", echo.ping(msg).await?);
            }
            _ => eprintln!("usage: echo serve | echo call MESSAGE"),
        }
        Ok(())
    })
}
