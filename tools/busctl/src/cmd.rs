// SPDX-License-Identifier: GPL-2.0

//! afbusctl's commands: one function per verb of the command line.

use std::path::Path;

use clap::CommandFactory;
use serde_json::{json, Value};

use crate::addr::{check_well_known, Addr, BusPath};
use crate::bloom::{Bloom, Pair};
use crate::cli::{Cli, Cmd, Generate};
use crate::client::{Client, Incoming};
use crate::error::{self, sys as syserr, Error, Result, PROG};
use crate::output::{self, grant_words, Printer};
use crate::sys::SCM_DST_ADDR;
use crate::wire::{self, Kind};
use crate::{filter, master, policy};

/// What every command knows: the global options.
pub struct Ctx {
    /// `--bus`, as given.
    pub bus: String,
    /// `--master`.
    pub master: String,
    /// `--json` or not.
    pub out: Printer,
}

impl Ctx {
    /// The bus, parsed.
    fn bus(&self) -> Result<BusPath> {
        BusPath::parse(&self.bus).map_err(Error::Usage)
    }

    /// Joins the bus through its master.
    fn join(&self) -> Result<(BusPath, Client)> {
        let bus = self.bus()?;
        let c = Client::join(&bus, &self.master)?;
        Ok((bus, c))
    }
}

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        bus: cli.bus,
        master: cli.master,
        out: Printer { json: cli.json },
    };
    match cli.cmd {
        Cmd::Master { path, name, policy } => run_master(&path, &name, &policy),
        Cmd::Join {
            names,
            allow_replacement,
            replace,
            no_queue,
            serve,
            count,
        } => {
            let flags = JoinFlags {
                allow_replacement,
                replace,
                no_queue,
            };
            join(&ctx, &names, &flags, serve.then_some(count))
        }
        Cmd::Send { dst, message, src } => send(&ctx, &dst, &message, src.as_deref()),
        Cmd::Call {
            dst,
            message,
            timeout,
        } => call(&ctx, &dst, &message, timeout),
        Cmd::Listen {
            matches,
            count,
            timeout,
        } => listen(&ctx, &matches, count, timeout),
        Cmd::Emit { pairs, message } => emit(&ctx, &pairs, &message),
        Cmd::Monitor { count, timeout } => monitor(&ctx, count, timeout),
        Cmd::List => list(&ctx),
        Cmd::Names => names(&ctx),
        Cmd::Release { names } => release(&ctx, &names),
        Cmd::Status => status(&ctx),
        Cmd::Bloom { pairs } => bloom(&ctx, &pairs),
    }
}

fn pairs_of(args: &[String]) -> Result<Vec<Pair>> {
    if args.len() > wire::MAX_PAIRS {
        return Err(Error::Usage(format!(
            "at most {} KEY=VALUE pairs per signal",
            wire::MAX_PAIRS
        )));
    }
    args.iter()
        .map(|a| a.parse().map_err(Error::Usage))
        .collect()
}

fn timeout_ms(secs: Option<u32>) -> i32 {
    secs.map_or(-1, |s| (s.min(3600) * 1000) as i32)
}

/// One line for a received message.
fn describe(inc: &Incoming) -> String {
    let src = inc.src.display();
    let grants: Vec<String> = inc
        .grants()
        .iter()
        .filter(|(t, _)| *t != SCM_DST_ADDR)
        .map(|(t, a)| format!(" [{} {}]", grant_words(*t).0, a.display()))
        .collect();
    match &inc.msg {
        Some(m) => {
            let pairs: Vec<String> = m.pairs.iter().map(|p| p.to_string()).collect();
            let pairs = if pairs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", pairs.join(" "))
            };
            format!(
                "{} from {src}{pairs}: \"{}\"{}{}",
                m.kind.name(),
                m.body_text().replace('\n', "\\n"),
                grants.concat(),
                if inc.raw.truncated {
                    " (truncated)"
                } else {
                    ""
                }
            )
        }
        None => format!(
            "{} bytes from {src} (not afbusctl's format){}",
            inc.raw.payload.len(),
            grants.concat()
        ),
    }
}

/// Prints one received message, after `what: `.
fn print_message(out: Printer, what: &str, inc: &Incoming) {
    out.print(
        || format!("{what}: {}", describe(inc)),
        || output::message("message", inc),
    );
}

/// Prints messages until `count` arrived or `timeout` passed quietly.
fn print_messages(
    out: Printer,
    c: &mut Client,
    count: Option<u64>,
    timeout: Option<u32>,
    what: &str,
) -> Result<()> {
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        let Some(inc) = c.recv(timeout_ms(timeout))? else {
            let drops = c.sock.drops().unwrap_or(0);
            let secs = timeout.unwrap_or(0);
            out.print(
                || {
                    format!(
                        "{what}: nothing more for {secs} s ({n} message(s) received, {drops} dropped)"
                    )
                },
                || json!({ "event": "quiet", "seconds": secs, "received": n, "dropped": drops }),
            );
            break;
        };
        n += 1;
        print_message(out, what, &inc);
    }
    Ok(())
}

/// `master`: runs the reference master until killed.
fn run_master(path: &str, name: &str, policy_file: &str) -> Result<()> {
    let bus = BusPath::parse(path).map_err(Error::Usage)?;
    Addr::parse(name).map_err(Error::Usage)?;
    let text = std::fs::read_to_string(policy_file)
        .map_err(|e| Error::Config(format!("policy {policy_file}: {}", error::io_text(&e))))?;
    let pol = policy::Policy::parse(&text)
        .map_err(|e| Error::Config(format!("policy {policy_file}: {e}")))?;
    master::serve(&bus, name, pol, policy_file)
}

/// `join`'s name flags.
struct JoinFlags {
    allow_replacement: bool,
    replace: bool,
    no_queue: bool,
}

impl JoinFlags {
    /// As `RequestName` takes them.
    fn words(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.allow_replacement {
            flags.push("allow-replacement");
        }
        if self.replace {
            flags.push("replace-existing");
        }
        if self.no_queue {
            flags.push("do-not-queue");
        }
        flags
    }
}

/// `join`: joins, requests `names`, then with `serve` (`Some(count)`)
/// answers calls.
fn join(ctx: &Ctx, names: &[String], flags: &JoinFlags, serve: Option<Option<u64>>) -> Result<()> {
    for n in names {
        check_well_known(n).map_err(Error::Usage)?;
    }
    let (bus, mut c) = ctx.join()?;
    let out = ctx.out;
    if !out.json {
        println!(
            "joined {} as {} (handle {})",
            bus.display(),
            c.unique,
            c.handle
        );
    }
    let mut answers = Vec::new();
    for n in names {
        let answer = c.request_name(n, &flags.words())?;
        if !out.json {
            println!("{n}: {answer}");
        }
        answers.push(json!({ "name": n, "answer": answer }));
    }
    if out.json {
        let v = json!({
            "event": "joined",
            "bus": bus.display(),
            "unique": c.unique,
            "handle": c.handle,
            "names": answers,
        });
        println!("{v}");
    }
    if let Some(count) = serve {
        serve_calls(out, &mut c, count)?;
    }
    Ok(())
}

/// Answers calls with `echo: MESSAGE` until `count` were answered.
fn serve_calls(out: Printer, c: &mut Client, count: Option<u64>) -> Result<()> {
    let mut served = 0u64;
    while count.is_none_or(|c| served < c) {
        let Some(inc) = c.recv(-1)? else { continue };
        print_message(out, "serve", &inc);
        if let Some(m) = &inc.msg {
            if m.kind == Kind::Call && m.flags & wire::FLAG_NO_REPLY == 0 {
                let to = inc.src.clone();
                c.reply(&to, &inc, &format!("echo: {}", m.body_text()))?;
                served += 1;
            }
        }
    }
    Ok(())
}

/// `send`: a one-way message, from `src` if given.
fn send(ctx: &Ctx, dst: &str, message: &str, src: Option<&str>) -> Result<()> {
    let dst = Addr::parse(dst).map_err(Error::Usage)?;
    let (_, mut c) = ctx.join()?;
    if let Some(s) = src.filter(|s| *s != c.unique) {
        check_well_known(s).map_err(Error::Usage)?;
        let answer = c.request_name(s, &["do-not-queue"])?;
        if answer != "primary-owner" && answer != "already-owner" {
            return Err(Error::Refused {
                what: format!("send from {s}"),
                reason: format!("the master answered \"{answer}\""),
            });
        }
    }
    c.send_oneway(&dst, message, src)?;
    let from = src.unwrap_or(&c.unique);
    ctx.out.print(
        || {
            format!(
                "sent {} bytes to {} from {from}",
                message.len(),
                dst.display()
            )
        },
        || json!({ "sent_bytes": message.len(), "dst": output::addr(&dst), "src": from }),
    );
    Ok(())
}

/// `call`: a call, and its reply printed.
fn call(ctx: &Ctx, dst: &str, message: &str, timeout: u32) -> Result<()> {
    let dst = Addr::parse(dst).map_err(Error::Usage)?;
    let (_, mut c) = ctx.join()?;
    let (reply, inc) = c.call(&dst, Vec::new(), message, timeout_ms(Some(timeout)))?;
    ctx.out.print(
        || {
            format!(
                "reply from {}: \"{}\"",
                inc.src.display(),
                reply.body_text()
            )
        },
        || {
            json!({
                "reply_from": output::addr(&inc.src),
                "body": reply.body_text(),
                "pairs": reply.pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            })
        },
    );
    Ok(())
}

/// `listen`: a filtered subscription, its signals printed.
fn listen(ctx: &Ctx, matches: &[String], count: Option<u64>, timeout: Option<u32>) -> Result<()> {
    let pairs = pairs_of(matches)?;
    let (_, mut c) = ctx.join()?;
    // The filter first: no false positive may slip in between.
    c.sock
        .attach_filter(&filter::for_pairs(&pairs))
        .map_err(syserr("setsockopt(SO_ATTACH_FILTER)"))?;
    c.add_match(&pairs)?;
    let shown: Vec<String> = pairs.iter().map(|p| p.to_string()).collect();
    let bloom = Bloom::of_pairs(&pairs);
    ctx.out.print(
        || {
            let what = if shown.is_empty() {
                "every signal".to_string()
            } else {
                shown.join(" ")
            };
            format!(
                "listening as {} for {what} (bloom bits {}, BPF filter attached)",
                c.unique,
                bloom.short()
            )
        },
        || {
            json!({
                "event": "listening",
                "unique": c.unique,
                "matches": shown,
                "bloom_bits": bloom.bits(),
                "bpf_filter": true,
            })
        },
    );
    print_messages(ctx.out, &mut c, count, timeout, "listen")
}

/// `emit`: a send grant from the master, then the signal.
fn emit(ctx: &Ctx, pairs: &[String], message: &str) -> Result<()> {
    if message.contains('=') && !message.contains(' ') {
        return Err(Error::Usage(format!(
            "the last argument is the message; \"{message}\" looks like a pair (add a message)"
        )));
    }
    let pairs = pairs_of(pairs)?;
    let (_, mut c) = ctx.join()?;
    // The master's policy decides; a bus that needs no send grants still
    // lets the send through.
    let refusal = c.request_send(&pairs).err();
    let bloom = match (c.emit(pairs, message), refusal) {
        (Ok(bloom), _) => bloom,
        (Err(e), Some(refusal)) if e.errno() == Some(libc::EACCES) => return Err(refusal),
        (Err(e), _) => return Err(e),
    };
    ctx.out.print(
        || format!("emitted \"{message}\" to bloom bits {}", bloom.short()),
        || json!({ "emitted": message, "bloom_bits": bloom.bits() }),
    );
    Ok(())
}

/// `monitor`: the all-zero match, everything printed.
fn monitor(ctx: &Ctx, count: Option<u64>, timeout: Option<u32>) -> Result<()> {
    let (bus, mut c) = ctx.join()?;
    c.add_match(&[])?;
    ctx.out.print(
        || format!("monitoring {} as {}", bus.display(), c.unique),
        || json!({ "event": "monitoring", "bus": bus.display(), "unique": c.unique }),
    );
    print_messages(ctx.out, &mut c, count, timeout, "monitor")
}

/// `list`: `/proc/net/bus` as a table.
fn list(ctx: &Ctx) -> Result<()> {
    let text = std::fs::read_to_string("/proc/net/bus").map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Config("/proc/net/bus is missing: load AF_BUS with `insmod af_bus.ko`".into())
        } else {
            syserr("read /proc/net/bus")(e)
        }
    })?;
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ctx.out.print(
        || output::table(&rows),
        || {
            let Some((header, rows)) = rows.split_first() else {
                return json!([]);
            };
            let keys: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
            let objs: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let m: serde_json::Map<String, Value> = keys
                        .iter()
                        .cloned()
                        .zip(r.iter().map(|c| output::cell(c)))
                        .collect();
                    Value::Object(m)
                })
                .collect();
            json!(objs)
        },
    );
    Ok(())
}

/// `names`: the master's `ListNames`.
fn names(ctx: &Ctx) -> Result<()> {
    let (_, mut c) = ctx.join()?;
    let names = c.list_names()?;
    ctx.out.print(
        || {
            let mut rows = vec![vec!["NAME", "OWNER"]];
            rows.extend(names.iter().map(|(n, o)| vec![n.as_str(), o.as_str()]));
            output::table(&rows)
        },
        || {
            let v: Vec<Value> = names
                .iter()
                .map(|(n, o)| json!({ "name": n, "owner": o }))
                .collect();
            json!(v)
        },
    );
    Ok(())
}

/// `release`: the master's `ReleaseName`, for each name.
fn release(ctx: &Ctx, names: &[String]) -> Result<()> {
    for n in names {
        check_well_known(n).map_err(Error::Usage)?;
    }
    let (_, mut c) = ctx.join()?;
    let mut answers = Vec::new();
    for n in names {
        let answer = c.release_name(n)?;
        if !ctx.out.json {
            println!("{n}: {answer}");
        }
        answers.push(json!({ "name": n, "answer": answer }));
    }
    if ctx.out.json {
        println!("{}", json!(answers));
    }
    Ok(())
}

/// `status`: the master's `GetStatus`.
fn status(ctx: &Ctx) -> Result<()> {
    let (_, mut c) = ctx.join()?;
    let status = c.status()?;
    ctx.out.print(
        || {
            let lines: Vec<String> = status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            lines.join("\n")
        },
        || {
            let m: serde_json::Map<String, Value> = status
                .iter()
                .map(|(k, v)| {
                    let v = match v.as_str() {
                        "true" => json!(true),
                        "false" => json!(false),
                        v => output::cell(v),
                    };
                    (k.clone(), v)
                })
                .collect();
            Value::Object(m)
        },
    );
    Ok(())
}

/// `bloom`: the bits of pairs, offline.
fn bloom(ctx: &Ctx, pairs: &[String]) -> Result<()> {
    let pairs = pairs_of(pairs)?;
    let all = Bloom::of_pairs(&pairs);
    ctx.out.print(
        || {
            let mut lines: Vec<String> = pairs
                .iter()
                .map(|p| {
                    let bits: Vec<String> = p.bits().iter().map(|b| b.to_string()).collect();
                    format!("{p}: bits {} hash32 {:#010x}", bits.join(" "), p.hash32())
                })
                .collect();
            lines.push(format!("bitmap: {}", all.hex()));
            lines.join("\n")
        },
        || {
            let v: Vec<Value> = pairs
                .iter()
                .map(|p| json!({ "pair": p.to_string(), "bits": p.bits(), "hash32": p.hash32() }))
                .collect();
            json!({ "pairs": v, "bits": all.bits(), "bitmap": all.hex() })
        },
    );
    Ok(())
}

/// `generate`: man pages or completions, from the command-line definition.
pub fn generate(what: &Generate) -> Result<()> {
    let mut cmd = Cli::command();
    let written = |dir: &Path| syserr(format!("write to {}", dir.display()));
    match what {
        Generate::Man { dir } => {
            std::fs::create_dir_all(dir).map_err(written(dir))?;
            clap_mangen::generate_to(cmd, dir).map_err(written(dir))?;
            println!("man pages written to {}", dir.display());
        }
        Generate::Completions { shell, dir } => {
            std::fs::create_dir_all(dir).map_err(written(dir))?;
            let path =
                clap_complete::generate_to(*shell, &mut cmd, PROG, dir).map_err(written(dir))?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
