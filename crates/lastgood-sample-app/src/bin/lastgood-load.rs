//! `lastgood-load ADDR [--path /version] [--threads 4] [--seconds 10]`: runs the load
//! generator until the time is up or SIGINT/stdin closes, then prints what it saw as
//! one JSON line (for `bench/zero-downtime.sh`). With `--until-stdin-closes`, it stops
//! when its stdin ends, so a script can bracket an operation with it.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use lastgood_sample_app::load::Load;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<SocketAddr> = None;
    let (mut path, mut threads, mut seconds, mut stdin) = ("/version".to_owned(), 4usize, 10u64, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--path" => path = args.next().expect("--path needs a value"),
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).expect("--threads needs a number"),
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds needs a number"),
            "--until-stdin-closes" => stdin = true,
            other => addr = Some(other.parse().expect("ADDR is host:port")),
        }
    }
    let addr = addr.expect("usage: lastgood-load ADDR [--path P] [--threads N] [--seconds S] [--until-stdin-closes]");
    let load = Load::start(addr, &path, threads, Duration::from_secs(seconds));
    if stdin {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    } else {
        std::thread::sleep(Duration::from_secs(seconds));
    }
    let t = load.stop();
    let bodies: Vec<String> = t.bodies.iter().map(|(k, v)| format!("\"{}\":{v}", k.replace('"', "'"))).collect();
    println!(
        "{{\"ok\":{},\"failed\":{},\"longest_gap_ms\":{:.3},\"p50_us\":{},\"p99_us\":{},\"elapsed_s\":{:.3},\"bodies\":{{{}}}}}",
        t.ok,
        t.failed,
        t.longest_gap.as_secs_f64() * 1000.0,
        t.quantile_us(0.5),
        t.quantile_us(0.99),
        t.elapsed.as_secs_f64(),
        bodies.join(",")
    );
}
