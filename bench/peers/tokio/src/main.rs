//! tokio peer for the weft benchmark suite.
//!
//! Usage: `tokio-bench <workload> [--workers N]`
//!
//! Every workload is the one defined in the benchmark spec (W1..W15),
//! written the way a tokio user would write it. The process prints exactly
//! two lines: `elapsed_ms=<float>` (timed from just before the workload
//! starts to its end; building the runtime is not timed) and
//! `check=<value>`, a checksum computed from the work that was actually done.
//!
//! Exit status 2 means "unknown / not implemented workload" so the runner can
//! tell it apart from a crash.

use std::future::Future;
use std::pin::Pin;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, Notify};

const SPAWN_COUNT: u64 = 1_000_000;
const YIELD_TASKS: u64 = 1_000;
const YIELDS_PER_TASK: u64 = 1_000;
const PING_PAIRS: u64 = 100;
const PINGS_PER_PAIR: u64 = 10_000;
const CHAIN_LEN: u64 = 1_000_000;
const FIB_N: u64 = 27;
const CHANNEL_ITEMS: u64 = 10_000_000;
const CHANNEL_CAP: usize = 1024;
const MPSC_PRODUCERS: u64 = 4;
const SELECT_PER_PRODUCER: u64 = 1_000_000;
const SELECT_CAP: usize = 128;
const PIPELINE_ITEMS: u64 = 100_000;
const PIPELINE_IN_FLIGHT: usize = 64;
const TIMER_TASKS: u64 = 1_000_000;
const MUTEX_TASKS: u64 = 100;
const MUTEX_LOCKS_PER_TASK: u64 = 10_000;
const BROADCAST_RECEIVERS: usize = 8;
const BROADCAST_ITEMS: u64 = 1_000_000;
const BROADCAST_CAP: usize = 1024;
const ECHO_CLIENTS: usize = 50;
const ECHO_MSGS: usize = 10_000;
const ECHO_MSG_LEN: usize = 64;
const STREAM_CONNS: usize = 4;
const STREAM_BYTES: usize = 64 << 20;
const STREAM_CHUNK: usize = 16 * 1024;
const STREAM_PERIOD: usize = 251;

/// The CPU-bound step of W10: 2,000 rounds of xorshift + multiply.
#[inline(never)]
fn work(x: u64) -> u64 {
    let mut h = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2_000 {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        h = h.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    h
}

/// Shared state of the "count down, last one signals" workloads (W1, W2,
/// W11). `decremented` is what the checksum reports, so a lost or duplicated
/// task shows up as a wrong check instead of a hang or a silent pass.
struct Countdown {
    remaining: AtomicU64,
    decremented: AtomicU64,
    done: Notify,
}

impl Countdown {
    fn new(n: u64) -> Arc<Self> {
        Arc::new(Countdown {
            remaining: AtomicU64::new(n),
            decremented: AtomicU64::new(0),
            done: Notify::new(),
        })
    }

    fn hit(&self) {
        self.decremented.fetch_add(1, Ordering::Relaxed);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one stores a permit if the waiter is not parked yet,
            // so the signal cannot be lost.
            self.done.notify_one();
        }
    }

    async fn wait(&self) -> u64 {
        self.done.notified().await;
        self.decremented.load(Ordering::Acquire)
    }
}

// W1: the spawns come from inside a task running on a worker.
fn spawn_many(rt: &Runtime) -> String {
    let count = rt.block_on(async {
        tokio::spawn(async {
            let cd = Countdown::new(SPAWN_COUNT);
            for _ in 0..SPAWN_COUNT {
                let cd = cd.clone();
                tokio::spawn(async move { cd.hit() });
            }
            cd.wait().await
        })
        .await
        .unwrap()
    });
    count.to_string()
}

// W2: the main thread is not a runtime worker; it spawns through the handle.
fn spawn_remote(rt: &Runtime) -> String {
    let cd = Countdown::new(SPAWN_COUNT);
    let handle = rt.handle();
    for _ in 0..SPAWN_COUNT {
        let cd = cd.clone();
        handle.spawn(async move { cd.hit() });
    }
    rt.block_on(cd.wait()).to_string()
}

// W3
fn yield_many(rt: &Runtime) -> String {
    let total = rt.block_on(async {
        let handles: Vec<_> = (0..YIELD_TASKS)
            .map(|_| {
                tokio::spawn(async {
                    let mut yielded = 0u64;
                    for _ in 0..YIELDS_PER_TASK {
                        tokio::task::yield_now().await;
                        yielded += 1;
                    }
                    yielded
                })
            })
            .collect();
        let mut total = 0u64;
        for h in handles {
            total += h.await.unwrap();
        }
        total
    });
    total.to_string()
}

// W4
fn ping_pong(rt: &Runtime) -> String {
    let total = rt.block_on(async {
        let mut pingers = Vec::with_capacity(PING_PAIRS as usize);
        for _ in 0..PING_PAIRS {
            let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
            let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
            tokio::spawn(async move {
                while let Some(i) = ping_rx.recv().await {
                    if pong_tx.send(i + 1).await.is_err() {
                        break;
                    }
                }
            });
            pingers.push(tokio::spawn(async move {
                let mut sum = 0u64;
                for i in 0..PINGS_PER_PAIR {
                    ping_tx.send(i).await.unwrap();
                    sum += pong_rx.recv().await.unwrap();
                }
                sum
            }));
        }
        let mut total = 0u64;
        for p in pingers {
            total += p.await.unwrap();
        }
        total
    });
    total.to_string()
}

// W5: each task spawns its successor and finishes; the sender of the
// completion signal travels down the chain with the index.
fn chain_link(index: u64, done: oneshot::Sender<u64>) {
    tokio::spawn(async move {
        if index == CHAIN_LEN {
            let _ = done.send(index);
        } else {
            chain_link(index + 1, done);
        }
    });
}

fn chained_spawn(rt: &Runtime) -> String {
    let last = rt.block_on(async {
        let (tx, rx) = oneshot::channel();
        chain_link(1, tx);
        rx.await.unwrap()
    });
    last.to_string()
}

// W6: every n >= 2 spawns two child tasks and joins both.
fn fib(n: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let a = tokio::spawn(fib(n - 1));
        let b = tokio::spawn(fib(n - 2));
        a.await.unwrap() + b.await.unwrap()
    })
}

fn fib_fork_join(rt: &Runtime) -> String {
    rt.block_on(async { tokio::spawn(fib(FIB_N)).await.unwrap() })
        .to_string()
}

// W7 / W8: producers split 0..CHANNEL_ITEMS into contiguous ranges.
fn channel_throughput(rt: &Runtime, producers: u64) -> String {
    let sum = rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<u64>(CHANNEL_CAP);
        let per = CHANNEL_ITEMS / producers;
        for p in 0..producers {
            let tx = tx.clone();
            tokio::spawn(async move {
                for v in p * per..(p + 1) * per {
                    tx.send(v).await.unwrap();
                }
            });
        }
        drop(tx);
        let consumer = tokio::spawn(async move {
            let mut sum = 0u64;
            while let Some(v) = rx.recv().await {
                sum = sum.wrapping_add(v);
            }
            sum
        });
        consumer.await.unwrap()
    });
    sum.to_string()
}

// W9
fn select_two(rt: &Runtime) -> String {
    let (count, sum) = rt.block_on(async {
        let (tx_a, mut rx_a) = mpsc::channel::<u64>(SELECT_CAP);
        let (tx_b, mut rx_b) = mpsc::channel::<u64>(SELECT_CAP);
        tokio::spawn(async move {
            for v in 0..SELECT_PER_PRODUCER {
                tx_a.send(v).await.unwrap();
            }
        });
        tokio::spawn(async move {
            for v in SELECT_PER_PRODUCER..2 * SELECT_PER_PRODUCER {
                tx_b.send(v).await.unwrap();
            }
        });
        let consumer = tokio::spawn(async move {
            let (mut count, mut sum) = (0u64, 0u64);
            let (mut a_open, mut b_open) = (true, true);
            loop {
                tokio::select! {
                    v = rx_a.recv(), if a_open => match v {
                        Some(v) => { count += 1; sum += v; }
                        None => a_open = false,
                    },
                    v = rx_b.recv(), if b_open => match v {
                        Some(v) => { count += 1; sum += v; }
                        None => b_open = false,
                    },
                    else => break,
                }
            }
            (count, sum)
        });
        consumer.await.unwrap()
    });
    format!("count={} sum={}", count, sum)
}

// W10: each item's work runs in its own spawned task; buffer_unordered keeps
// at most PIPELINE_IN_FLIGHT of them alive (map is lazy, so the spawn only
// happens when buffer_unordered pulls the next item).
fn pipeline(rt: &Runtime) -> String {
    let sum = rt.block_on(async {
        tokio::spawn(async {
            stream::iter(0..PIPELINE_ITEMS)
                .map(|x| tokio::spawn(async move { work(x) }))
                .buffer_unordered(PIPELINE_IN_FLIGHT)
                .filter_map(|r| async move {
                    let h = r.unwrap();
                    if h % 2 == 0 {
                        Some(h)
                    } else {
                        None
                    }
                })
                .fold(0u64, |acc, h| async move { acc.wrapping_add(h) })
                .await
        })
        .await
        .unwrap()
    });
    sum.to_string()
}

// W10 baseline: the same map/filter/fold with no concurrency at all.
fn pipeline_seq() -> String {
    let mut sum = 0u64;
    for x in 0..PIPELINE_ITEMS {
        let h = work(x);
        if h % 2 == 0 {
            sum = sum.wrapping_add(h);
        }
    }
    sum.to_string()
}

// W11
fn timers(rt: &Runtime) -> String {
    let count = rt.block_on(async {
        tokio::spawn(async {
            let cd = Countdown::new(TIMER_TASKS);
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            for _ in 0..TIMER_TASKS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let ms = 1 + x % 100;
                let cd = cd.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    cd.hit();
                });
            }
            cd.wait().await
        })
        .await
        .unwrap()
    });
    count.to_string()
}

// W12
fn mutex_contended(rt: &Runtime) -> String {
    let count = rt.block_on(async {
        let m = Arc::new(tokio::sync::Mutex::new(0u64));
        let mut handles = Vec::with_capacity(MUTEX_TASKS as usize);
        for _ in 0..MUTEX_TASKS {
            let m = m.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..MUTEX_LOCKS_PER_TASK {
                    let mut g = m.lock().await;
                    *g += 1;
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let v = *m.lock().await;
        v
    });
    count.to_string()
}

// W15: no receiver may lag, the sender waits for room. tokio's own
// `sync::broadcast` cannot do that: a full ring makes `send` overwrite the
// oldest value and the slow receiver gets `RecvError::Lagged`, so it does
// not meet the spec. The idiomatic tokio form that does is one bounded mpsc
// channel per receiver, the sender sending each value to every channel in
// turn (what the Go peer does with its buffered channels).
fn broadcast(rt: &Runtime) -> String {
    let total = rt.block_on(async {
        let mut senders = Vec::with_capacity(BROADCAST_RECEIVERS);
        let mut receivers = Vec::with_capacity(BROADCAST_RECEIVERS);
        for _ in 0..BROADCAST_RECEIVERS {
            let (tx, mut rx) = mpsc::channel::<u64>(BROADCAST_CAP);
            senders.push(tx);
            receivers.push(tokio::spawn(async move {
                let mut sum = 0u64;
                while let Some(v) = rx.recv().await {
                    sum = sum.wrapping_add(v);
                }
                sum
            }));
        }
        tokio::spawn(async move {
            for v in 0..BROADCAST_ITEMS {
                for tx in &senders {
                    tx.send(v).await.unwrap();
                }
            }
            // Dropping the senders here closes every channel.
        });
        let mut total = 0u64;
        for r in receivers {
            total = total.wrapping_add(r.await.unwrap());
        }
        total
    });
    total.to_string()
}

/// The echo server of W13 and W14: a listener on 127.0.0.1 (ephemeral
/// port) accepting `conns` connections, a task per connection copying
/// what it reads back to the peer until the peer closes its write side.
async fn echo_server(conns: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..conns {
            let (mut sock, _) = listener.accept().await.unwrap();
            sock.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut rd, mut wr) = sock.split();
                tokio::io::copy(&mut rd, &mut wr).await.unwrap();
            });
        }
    });
    addr
}

/// W13: 50 clients, each 10,000 round trips of a 64-byte message, reading
/// the full echo before sending the next. Check: bytes echoed.
fn tcp_echo(rt: &Runtime) -> String {
    let total = rt.block_on(async {
        let addr = echo_server(ECHO_CLIENTS).await;
        let mut clients = Vec::with_capacity(ECHO_CLIENTS);
        for id in 0..ECHO_CLIENTS {
            clients.push(tokio::spawn(async move {
                let mut sock = TcpStream::connect(addr).await.unwrap();
                sock.set_nodelay(true).unwrap();
                let mut out = [0u8; ECHO_MSG_LEN];
                let mut inb = [0u8; ECHO_MSG_LEN];
                let mut echoed = 0u64;
                for i in 0..ECHO_MSGS {
                    out.fill((id * 7 + i) as u8);
                    sock.write_all(&out).await.unwrap();
                    sock.read_exact(&mut inb).await.unwrap();
                    assert_eq!(inb, out, "echo differs");
                    echoed += ECHO_MSG_LEN as u64;
                }
                echoed
            }));
        }
        let mut total = 0u64;
        for c in clients {
            total += c.await.unwrap();
        }
        total
    });
    total.to_string()
}

/// W14's pattern for connection `conn`: byte k = (k * 131 + conn) mod 251,
/// long enough that the slice from (i mod 251) covers one chunk.
fn stream_pattern(conn: usize) -> Vec<u8> {
    (0..STREAM_CHUNK + STREAM_PERIOD)
        .map(|k| ((k * 131 + conn) % STREAM_PERIOD) as u8)
        .collect()
}

/// W14: 4 connections, each with a writer task streaming 64 MiB in 16 KiB
/// writes and a reader task checking the echo byte for byte. Check: bytes
/// verified.
fn tcp_stream(rt: &Runtime) -> String {
    let total = rt.block_on(async {
        let addr = echo_server(STREAM_CONNS).await;
        let mut readers = Vec::with_capacity(STREAM_CONNS);
        for conn in 0..STREAM_CONNS {
            let pat = Arc::new(stream_pattern(conn));
            let sock = TcpStream::connect(addr).await.unwrap();
            sock.set_nodelay(true).unwrap();
            let (mut rd, mut wr) = sock.into_split();
            let wpat = pat.clone();
            tokio::spawn(async move {
                let mut pos = 0;
                while pos < STREAM_BYTES {
                    let off = pos % STREAM_PERIOD;
                    wr.write_all(&wpat[off..off + STREAM_CHUNK]).await.unwrap();
                    pos += STREAM_CHUNK;
                }
                wr.shutdown().await.unwrap();
            });
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; STREAM_CHUNK];
                let mut pos = 0usize;
                loop {
                    let n = rd.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    let off = pos % STREAM_PERIOD;
                    assert!(buf[..n] == pat[off..off + n], "stream differs");
                    pos += n;
                }
                assert_eq!(pos, STREAM_BYTES, "stream ended early");
                pos as u64
            }));
        }
        let mut total = 0u64;
        for r in readers {
            total += r.await.unwrap();
        }
        total
    });
    total.to_string()
}

const WORKLOADS: &[&str] = &[
    "spawn_many",
    "spawn_remote",
    "yield_many",
    "ping_pong",
    "chained_spawn",
    "fib_fork_join",
    "mpsc_throughput",
    "spsc_throughput",
    "select_two",
    "pipeline",
    "pipeline_seq",
    "timers",
    "mutex_contended",
    "broadcast",
    "tcp_echo",
    "tcp_stream",
];

fn usage() -> ! {
    eprintln!(
        "usage: tokio-bench <workload> [--workers N]\nworkloads: {}",
        WORKLOADS.join(" ")
    );
    exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut workload: Option<String> = None;
    let mut workers: usize = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    while let Some(a) = args.next() {
        if a == "--workers" {
            workers = match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n >= 1 => n,
                _ => usage(),
            };
        } else if let Some(v) = a.strip_prefix("--workers=") {
            workers = match v.parse() {
                Ok(n) if n >= 1 => n,
                _ => usage(),
            };
        } else if workload.is_none() && !a.starts_with('-') {
            workload = Some(a);
        } else {
            usage();
        }
    }
    let workload = workload.unwrap_or_else(|| usage());
    if !WORKLOADS.contains(&workload.as_str()) {
        eprintln!("tokio-bench: workload '{}' not implemented", workload);
        exit(2);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .enable_io()
        .build()
        .expect("building the tokio runtime");

    let start = Instant::now();
    let check = match workload.as_str() {
        "spawn_many" => spawn_many(&rt),
        "spawn_remote" => spawn_remote(&rt),
        "yield_many" => yield_many(&rt),
        "ping_pong" => ping_pong(&rt),
        "chained_spawn" => chained_spawn(&rt),
        "fib_fork_join" => fib_fork_join(&rt),
        "mpsc_throughput" => channel_throughput(&rt, MPSC_PRODUCERS),
        "spsc_throughput" => channel_throughput(&rt, 1),
        "select_two" => select_two(&rt),
        "pipeline" => pipeline(&rt),
        "pipeline_seq" => pipeline_seq(),
        "timers" => timers(&rt),
        "mutex_contended" => mutex_contended(&rt),
        "broadcast" => broadcast(&rt),
        "tcp_echo" => tcp_echo(&rt),
        "tcp_stream" => tcp_stream(&rt),
        _ => unreachable!(),
    };
    let elapsed = start.elapsed();

    println!("elapsed_ms={:.3}", elapsed.as_secs_f64() * 1e3);
    println!("check={}", check);
    // Tearing the runtime down (freeing a million finished timer entries,
    // joining workers) is not part of the workload.
    std::mem::forget(rt);
}
