//! Mirrors one directory tree into another with the driver sync engine and prints what it did
//! as one JSON line; used by `tools/bench/driver-sync.sh`.
//!
//! The hashes of the synced files are kept in `<DEST>.manifest.json` (next to the destination,
//! as the guest manifest keeps them), so a re-sync does not read unchanged files; like the guest
//! manifest, it is only rewritten when something changed.
//!
//! ```text
//! sync_tree SRC DEST [--threads N] [--no-hash] [--no-fsync] [--checksum]
//! ```
//!
//! The JSON line's `seconds` is the engine's whole time (listing the source, planning,
//! executing); `plan_seconds` and `execute_seconds` split it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use passthru_driver::sync::{self, CompareMode, KnownFile, SyncJob, SyncOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || !known_flags(&args[2..]) || args[..2].iter().any(|a| a.starts_with('-')) {
        eprintln!("usage: sync_tree SRC DEST [--threads N] [--no-hash] [--no-fsync] [--checksum]");
        std::process::exit(2);
    }
    let (source, dest) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let flag = |name: &str| args.iter().any(|a| a == name);
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(SyncOptions::default().threads);
    let manifest = manifest_path(&dest);
    let options = SyncOptions {
        threads,
        hashes: !flag("--no-hash"),
        durable: !flag("--no-fsync"),
        compare: if flag("--checksum") {
            CompareMode::Checksum
        } else {
            CompareMode::SizeAndTime
        },
        known: load_manifest(&manifest),
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let result = SyncJob::mirror(&source, &dest)
        .and_then(|job| sync::plan(&job, &options))
        .and_then(|plan| {
            let planned = started.elapsed();
            let summary = plan.summary();
            let mut last_tenth = 0;
            let report = sync::execute(
                &plan,
                &options,
                &mut |progress| {
                    let tenth = progress.bytes_done * 10 / progress.bytes_total.max(1);
                    if tenth > last_tenth {
                        last_tenth = tenth;
                        eprintln!(
                            "  {:>3}%  {} of {} files  {:.0} MiB/s",
                            tenth * 10,
                            progress.files_done,
                            progress.files_total,
                            progress.bytes_per_second() / 1048576.0
                        );
                    }
                },
                &AtomicBool::new(false),
            )?;
            Ok((summary, planned, report))
        });
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok((summary, planned, report)) => {
            let known: BTreeMap<String, KnownFile> = report
                .files
                .iter()
                .filter_map(|f| {
                    let known = KnownFile {
                        size: f.size,
                        time: f.time,
                        hash: f.hash.clone()?,
                    };
                    Some((sync::relative_key(&f.dest), known))
                })
                .collect();
            let changed = known != options.known;
            if changed
                && let Err(error) = fs_err::write(&manifest, serde_json::to_vec(&known).unwrap())
            {
                eprintln!("warning: {error}");
            }
            println!(
                "{}",
                serde_json::json!({
                    "seconds": seconds,
                    "plan_seconds": planned.as_secs_f64(),
                    "execute_seconds": report.elapsed.as_secs_f64(),
                    "bytes_copied": report.bytes_copied,
                    "files": report.files.len(),
                    "removed": report.removed.len(),
                    "summary": summary,
                })
            );
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}

/// Whether every option is one this program knows (a mistyped one must not be taken for a
/// path: DEST is mirrored, files not in SRC are deleted from it).
fn known_flags(flags: &[String]) -> bool {
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--no-hash" | "--no-fsync" | "--checksum" => {}
            "--threads" if flags.next().is_some_and(|n| n.parse::<usize>().is_ok()) => {}
            _ => return false,
        }
    }
    true
}

fn manifest_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    dest.with_file_name(name)
}

fn load_manifest(path: &Path) -> BTreeMap<String, KnownFile> {
    fs_err::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}
