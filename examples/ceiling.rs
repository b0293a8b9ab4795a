//! The two ceilings the benchmarks (`bench/run.py`) compare Keyway against, measured on the same
//! machine in the same run:
//!
//! - `ceiling serve ADDR BODY_FILE`: a bare axum handler answering every `GET /` with the bytes of
//!   `BODY_FILE` (the bench passes a real `/api/users/me` answer), with no authentication at all: the
//!   most any route of this stack can serve here.
//! - `ceiling hash SECONDS THREADS`: argon2id with Keyway's default parameters in a plain loop on
//!   `THREADS` threads, each reusing its working memory; prints hashes per second, the most logins per
//!   second this machine can verify.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use keyway::auth::password::HashParams;
use std::time::{Duration, Instant};

/// The same allocator as `keyway`, so the ceiling is built the same way.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") if args.len() == 4 => serve(&args[2], &args[3]),
        Some("hash") if args.len() == 4 => {
            let seconds: u64 = args[2].parse().expect("SECONDS is a number");
            let threads: usize = args[3].parse().expect("THREADS is a number");
            hash(Duration::from_secs(seconds), threads);
        }
        _ => {
            eprintln!("usage: ceiling serve ADDR BODY_FILE | ceiling hash SECONDS THREADS");
            std::process::exit(2);
        }
    }
}

fn serve(addr: &str, body_file: &str) {
    let body: &'static [u8] = Vec::leak(std::fs::read(body_file).expect("BODY_FILE is readable"));
    let app = Router::new().route(
        "/",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
    );
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            println!("listening on {}", listener.local_addr().expect("address"));
            axum::serve(listener, app).await.expect("serve");
        });
}

fn hash(duration: Duration, threads: usize) {
    let p = HashParams::default();
    let params = Params::new(p.m_cost_kib, p.t_cost, p.p_cost, None).expect("valid parameters");
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let params = params.clone();
                s.spawn(move || {
                    let mut memory = vec![Block::default(); params.block_count()];
                    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                    let mut out = [0u8; 32];
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        argon2
                            .hash_password_into_with_memory(
                                b"correct horse battery staple",
                                b"sixteen byte slt",
                                &mut out,
                                &mut memory[..],
                            )
                            .expect("hash");
                        std::hint::black_box(&out);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"hashes\": {total}, \"seconds\": {secs:.3}, \"per_second\": {:.2}, \"m_cost_kib\": {}, \"t_cost\": {}, \"p_cost\": {}}}",
        total as f64 / secs,
        p.m_cost_kib,
        p.t_cost,
        p.p_cost
    );
}
