//! Hit ratio and time per request of `MemoryStore` next to exact LRU, moka, quick_cache and
//! Bélády's optimum on real block traces, at several cache sizes. Prints one markdown table
//! and, with `--charts DIR`, writes one SVG chart per trace (hit ratio against cache size).
//!
//! ```text
//! cargo run -p cachemacro-benches --release --example trace_replay -- \
//!     ../shared/traces/OLTP.lis.zst ../shared/traces/P3.lis.zst --charts docs
//! ```
//!
//! Traces are in the `.lis` format of the ARC paper's traces (Nimrod Megiddo and Dharmendra
//! S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST 2003), plain or
//! zstd-compressed (`.zst`): each line reads `start_block block_count ignored request_no`,
//! and each of the `block_count` blocks from `start_block` on is one request for that
//! block. Read this way, exact LRU reproduces the paper's LRU figures (32.83 % on OLTP at
//! 1 000 entries).
//!
//! Options: `--sizes 1000,2000,...` replaces the default sizes; `--charts DIR` writes
//! `DIR/hit-ratio-<trace>.svg`; `--ours-only N` replays only `MemoryStore`, `N` times per
//! size (each store draws its own hash seed), and prints each hit ratio and their mean, a
//! quick check while tuning the engine. Every policy sees each trace as a memoizing cache does
//! (get; on a miss, insert), see `cachemacro_benches::replay`.

use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cachemacro_benches::replay::{Policy, Replay};
use plotters::prelude::*;

/// The sizes of the ARC paper's tables that the published comparisons use.
const DEFAULT_SIZES: [usize; 6] = [1_000, 2_000, 15_000, 20_000, 32_768, 160_000];

/// One trace's replays: for each size, one replay per policy of `Policy::ALL`.
struct TraceResults {
    name: String,
    rows: Vec<(usize, Vec<Replay>)>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let mut paths = Vec::new();
    let mut sizes = DEFAULT_SIZES.to_vec();
    let mut charts: Option<PathBuf> = None;
    let mut ours_only: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = args.next().ok_or("--sizes needs a list like 1000,2000")?;
                sizes = list
                    .split(',')
                    .map(|size| size.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--charts" => charts = Some(args.next().ok_or("--charts needs a directory")?.into()),
            "--ours-only" => {
                let runs = args.next().ok_or("--ours-only needs a number of replays")?;
                ours_only = Some(runs.parse::<usize>()?.max(1));
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    if paths.is_empty() {
        return Err(
            "usage: trace_replay TRACE.lis[.zst]... [--sizes N,N,...] [--charts DIR] [--ours-only N]"
                .into(),
        );
    }

    if let Some(runs) = ours_only {
        for path in &paths {
            let trace = read_trace(path)?;
            let name = trace_name(path);
            for &size in &sizes {
                let ratios: Vec<f64> = (0..runs)
                    .map(|_| Policy::MemoryStore.replay(&trace, size).hit_ratio() * 100.0)
                    .collect();
                let mean = ratios.iter().sum::<f64>() / runs as f64;
                let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
                println!(
                    "{name} {size}: MemoryStore mean {mean:.2} ({})",
                    each.join(" ")
                );
            }
        }
        eprintln!("\n(ran in {:.1} s)", started.elapsed().as_secs_f64());
        return Ok(());
    }

    let mut results = Vec::new();
    for path in &paths {
        let trace = read_trace(path)?;
        let name = trace_name(path);
        let mut rows = Vec::new();
        for &size in &sizes {
            let replays = Policy::ALL
                .iter()
                .map(|policy| policy.replay(&trace, size))
                .collect();
            rows.push((size, replays));
        }
        results.push(TraceResults { name, rows });
    }

    print_table(&results);
    if let Some(dir) = charts {
        std::fs::create_dir_all(&dir)?;
        for trace in &results {
            let file = dir.join(format!("hit-ratio-{}.svg", trace.name));
            draw_chart(trace, &file)?;
            eprintln!("wrote {}", file.display());
        }
    }
    eprintln!("\n(ran in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// The requested block ids, in order, of a `.lis` or `.lis.zst` trace.
fn read_trace(path: &Path) -> Result<Vec<u64>, Box<dyn Error>> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|ext| ext == "zst") {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(file)
    };
    let mut trace = Vec::new();
    for (number, line) in BufReader::new(reader).lines().enumerate() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            continue;
        };
        let bad = |e| format!("{}:{}: {e}", path.display(), number + 1);
        let start: u64 = start.parse().map_err(bad)?;
        let count: u64 = count.parse().map_err(bad)?;
        trace.extend(start..start + count);
    }
    Ok(trace)
}

/// `OLTP` for `.../OLTP.lis.zst`.
fn trace_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    file.split('.').next().unwrap_or(&file).to_owned()
}

fn replay_of(replays: &[Replay], policy: Policy) -> Replay {
    let at = Policy::ALL
        .iter()
        .position(|&p| p == policy)
        .expect("a policy of ALL");
    replays[at]
}

fn print_table(results: &[TraceResults]) {
    println!("Hit ratio (%) and wall time per request (ns) on each trace, one run.");
    println!("\"vs best peer\" = MemoryStore minus the better of moka and quick_cache, in points;");
    println!("\"time / best peer\" = MemoryStore's ns per request over that of the peer with the better hit ratio.\n");
    let policies = Policy::ALL
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>();
    let timed = Policy::ALL.iter().filter(|&&p| p != Policy::Belady);
    println!(
        "| trace | requests | cache | {} | vs best peer | {} | time / best peer |",
        policies.join(" | "),
        timed
            .clone()
            .map(|p| format!("ns {p}"))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    println!(
        "|---|---:|---:|{}{}---:|",
        "---:|".repeat(policies.len() + 1),
        "---:|".repeat(timed.clone().count()),
    );
    for trace in results {
        for (size, replays) in &trace.rows {
            let ours = replay_of(replays, Policy::MemoryStore);
            let best_peer = [Policy::Moka, Policy::QuickCache]
                .map(|p| replay_of(replays, p))
                .into_iter()
                .max_by(|a, b| a.hit_ratio().total_cmp(&b.hit_ratio()))
                .expect("two peers");
            let ratios = replays
                .iter()
                .map(|r| format!("{:.2}", r.hit_ratio() * 100.0))
                .collect::<Vec<_>>();
            let times = Policy::ALL
                .iter()
                .zip(replays)
                .filter(|(&p, _)| p != Policy::Belady)
                .map(|(_, r)| format!("{:.0}", r.ns_per_request()))
                .collect::<Vec<_>>();
            println!(
                "| {} | {} | {size} | {} | {:+.2} | {} | {:.2} |",
                trace.name,
                ours.requests,
                ratios.join(" | "),
                (ours.hit_ratio() - best_peer.hit_ratio()) * 100.0,
                times.join(" | "),
                ours.ns_per_request() / best_peer.ns_per_request(),
            );
        }
    }
}

/// Hit ratio against cache size (log scale), one line per policy, Bélády on top.
fn draw_chart(trace: &TraceResults, file: &Path) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(file, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let smallest = trace.rows.iter().map(|(size, _)| *size).min().unwrap_or(1) as f64;
    let largest = trace.rows.iter().map(|(size, _)| *size).max().unwrap_or(1) as f64;
    let highest = trace
        .rows
        .iter()
        .flat_map(|(_, replays)| replays.iter().map(Replay::hit_ratio))
        .fold(0.0_f64, f64::max)
        * 100.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: hit ratio against cache size", trace.name),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (smallest * 0.9..largest * 1.1).log_scale(),
            0.0..(highest * 1.08).max(1.0),
        )?;
    chart
        .configure_mesh()
        .x_desc("cache size (entries, log scale)")
        .y_desc("hit ratio (%)")
        .x_label_formatter(&|size| format!("{size:.0}"))
        .y_label_formatter(&|ratio| format!("{ratio:.0}"))
        .draw()?;
    for (at, policy) in Policy::ALL.iter().enumerate() {
        let (color, width) = match policy {
            Policy::Belady => (BLACK, 2),
            Policy::Lru => (RGBColor(150, 150, 150), 2),
            Policy::Moka => (RGBColor(31, 119, 180), 2),
            Policy::QuickCache => (RGBColor(44, 160, 44), 2),
            Policy::MemoryStore => (RGBColor(214, 39, 40), 3),
        };
        let points = trace
            .rows
            .iter()
            .map(|(size, replays)| (*size as f64, replays[at].hit_ratio() * 100.0))
            .collect::<Vec<_>>();
        let style = ShapeStyle::from(color).stroke_width(width);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(policy.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            points
                .into_iter()
                .map(|point| Circle::new(point, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
