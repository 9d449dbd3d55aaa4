//! Generates a driver-store package shaped like NVIDIA's display driver, for the sync
//! benchmark (`tools/bench/driver-sync.sh`), and simulates a driver update on a copy of it.
//!
//! The file names and folders are those of `[SourceDisksFiles]` in the real NVIDIA 470.05 INF
//! (`fixtures/inf/nvidia_nv_dispi_470.05.inf`, 308 files in 6 folders). Sizes: seven very large
//! files (the real package's biggest: cuDNN, OptiX, the D3D and Vulkan user-mode drivers, the
//! kernel driver), DLL/EXE/SO files of a few megabytes, and small resources; scaled so the
//! whole tree has the requested size. Content is pseudo-random (incompressible, not sparse).
//!
//! ```text
//! driver_tree generate DIR [--total-mb 1536]
//! driver_tree update DIR [--percent 10]
//! ```

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use passthru_driver::inf::Inf;

const NVIDIA_INF: &[u8] = include_bytes!("../../../fixtures/inf/nvidia_nv_dispi_470.05.inf");

/// (file name, megabytes): the very large files, fixed before scaling.
const LARGE: [(&str, u64); 7] = [
    ("cudnn_infer64_7.dll", 400),
    ("nvoptix.dll", 160),
    ("libnvwgf2umx.so", 120),
    ("nvrtum64.dll", 100),
    ("nvwgf2umx.dll", 70),
    ("nvcompiler64.dll", 60),
    ("nvlddmkm.sys", 50),
];

const MB: u64 = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") if args.len() >= 2 => {
            let total = option(&args, "--total-mb").unwrap_or(1536) * MB;
            generate(Path::new(&args[1]), total)
        }
        Some("update") if args.len() >= 2 => {
            let percent = option(&args, "--percent").unwrap_or(10);
            update(Path::new(&args[1]), percent)
        }
        _ => {
            eprintln!("usage: driver_tree generate DIR [--total-mb N] | update DIR [--percent P]");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn option(args: &[String], name: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

/// The package layout from the real INF, with a size for every file.
fn layout(total: u64) -> Vec<(PathBuf, u64)> {
    let inf = Inf::parse(NVIDIA_INF).expect("the fixture parses");
    let (files, _) = inf.package_files("amd64", "nv_dispi.inf");
    let mut sized: Vec<(PathBuf, u64, bool)> = files
        .iter()
        .map(|file| {
            let path: PathBuf = file.relative_path.split('\\').collect();
            let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
            let seed = fnv(&name);
            if let Some((_, mb)) = LARGE
                .iter()
                .find(|(large, _)| large.eq_ignore_ascii_case(&name))
            {
                return (path, mb * MB, false);
            }
            let size = if [".dll", ".so", ".exe", ".sys", ".bin", ".1"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                MB / 2 + seed % (12 * MB)
            } else {
                1024 + seed % (200 * 1024)
            };
            (path, size, true)
        })
        .collect();
    let fixed: u64 = sized.iter().filter(|f| !f.2).map(|f| f.1).sum();
    let scalable: u64 = sized.iter().filter(|f| f.2).map(|f| f.1).sum();
    let factor = total.saturating_sub(fixed) as f64 / scalable.max(1) as f64;
    for file in sized.iter_mut().filter(|f| f.2) {
        file.1 = ((file.1 as f64 * factor) as u64).max(1);
    }
    sized
        .into_iter()
        .map(|(path, size, _)| (path, size))
        .collect()
}

fn generate(root: &Path, total: u64) -> std::io::Result<()> {
    let driver_date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_355_710);
    let mut written = 0;
    let files = layout(total);
    for (path, size) in &files {
        let full = root.join(path);
        write_random(&full, *size, fnv(&path.to_string_lossy()))?;
        set_time(&full, driver_date)?;
        written += size;
    }
    println!(
        "generated {} files, {:.1} MiB in {}",
        files.len(),
        written as f64 / MB as f64,
        root.display()
    );
    Ok(())
}

/// Simulates a driver update on the tree: rewrites files (new content, new time, sizes
/// nudged), removes two small files and adds two new ones, so that the new content (rewritten
/// plus added files) is `percent` of the tree's bytes, to within one small file.
///
/// Which files change is a fixed pseudo-random choice; a file is rewritten only while it still
/// fits in what is left of the budget, so the change is spread over many mid-sized files (as in
/// a real update) instead of landing in one very large file, which would copy faster.
fn update(root: &Path, percent: u64) -> std::io::Result<()> {
    let mut files: Vec<(PathBuf, u64)> = Vec::new();
    collect(root, Path::new(""), &mut files)?;
    let total: u64 = files.iter().map(|f| f.1).sum();
    let added = [MB, MB];
    let target = (total * percent / 100).saturating_sub(added.iter().sum());
    files.sort_by_key(|(path, _)| fnv(&format!("update:{}", path.display())));
    let new_date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut changed = 0;
    let mut count = 0;
    for (path, size) in &files {
        let new_size = size + size / 50;
        if changed + new_size > target {
            continue;
        }
        let full = root.join(path);
        write_random(&full, new_size, fnv(&format!("v2:{}", path.display())))?;
        set_time(&full, new_date)?;
        changed += new_size;
        count += 1;
    }
    let small: Vec<&(PathBuf, u64)> = files
        .iter()
        .filter(|f| f.1 < 64 * 1024 && !is_changed(root, &f.0, new_date))
        .take(2)
        .collect();
    for (path, _) in &small {
        fs_err::remove_file(root.join(path))?;
    }
    for (index, size) in added.iter().enumerate() {
        let path = root.join(format!("nvnew{index}.dll"));
        write_random(&path, *size, index as u64)?;
        set_time(&path, new_date)?;
        changed += size;
    }
    println!(
        "updated {count} files, removed {}, added {}: {:.1} of {:.1} MiB are new content ({:.2}%)",
        small.len(),
        added.len(),
        changed as f64 / MB as f64,
        total as f64 / MB as f64,
        changed as f64 * 100.0 / total as f64
    );
    Ok(())
}

/// Whether `update` already rewrote the file (it has the update's time).
fn is_changed(root: &Path, path: &Path, new_date: SystemTime) -> bool {
    fs_err::metadata(root.join(path))
        .and_then(|meta| meta.modified())
        .is_ok_and(|time| time == new_date)
}

fn collect(dir: &Path, relative: &Path, out: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let child = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            collect(&entry.path(), &child, out)?;
        } else {
            out.push((child, entry.metadata()?.len()));
        }
    }
    Ok(())
}

fn write_random(path: &Path, size: u64, seed: u64) -> std::io::Result<()> {
    fs_err::create_dir_all(path.parent().unwrap())?;
    let mut out = BufWriter::with_capacity(1 << 20, fs_err::File::create(path)?);
    let mut state = seed | 1;
    let mut block = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            // xorshift64: fast and incompressible enough for a copy benchmark.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let take = left.min(block.len() as u64) as usize;
        out.write_all(&block[..take])?;
        left -= take as u64;
    }
    out.flush()
}

fn set_time(path: &Path, time: SystemTime) -> std::io::Result<()> {
    let file = fs_err::OpenOptions::new().write(true).open(path)?;
    file.file().set_modified(time)
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
