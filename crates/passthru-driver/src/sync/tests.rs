//! Sync engine tests against temporary trees.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::*;

mod interruption;

struct Trees {
    _root: tempfile::TempDir,
    source: PathBuf,
    dest: PathBuf,
}

fn trees() -> Trees {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("source");
    let dest = root.path().join("dest");
    fs_err::create_dir_all(&source).unwrap();
    fs_err::create_dir_all(&dest).unwrap();
    Trees {
        _root: root,
        source,
        dest,
    }
}

fn write(path: &Path, content: &[u8]) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, content).unwrap();
}

fn set_mtime(path: &Path, time: SystemTime) {
    let file = fs_err::OpenOptions::new().write(true).open(path).unwrap();
    file.file().set_modified(time).unwrap();
}

fn mtime(path: &Path) -> SystemTime {
    fs_err::metadata(path).unwrap().modified().unwrap()
}

/// A small driver-like tree with nested folders and non-ASCII names.
fn populate(source: &Path) {
    write(&source.join("nv_dispi.inf"), b"[Version]\n");
    write(&source.join("nvlddmkm.sys"), &vec![7u8; 300_000]);
    write(&source.join("NvCamera/Color.fx"), b"shader");
    write(
        &source.join("Gerätetreiber/日本語ドライバ.dll"),
        b"unicode name",
    );
    write(
        &source.join("Display.NvContainer/plugins/LocalSystem/naïve.dll"),
        b"x",
    );
    write(&source.join("empty.bin"), b"");
}

fn run(job: &SyncJob, options: &SyncOptions) -> Result<SyncReport, SyncError> {
    let plan = plan(job, options)?;
    execute(&plan, options, &mut |_| {}, &AtomicBool::new(false))
}

fn execute_quietly(plan: &SyncPlan, options: &SyncOptions) -> Result<SyncReport, SyncError> {
    execute(plan, options, &mut |_| {}, &AtomicBool::new(false))
}

/// The hashes a manifest would keep after `report`.
fn known_hashes(report: &SyncReport) -> BTreeMap<String, KnownFile> {
    report
        .files
        .iter()
        .map(|f| {
            let known = KnownFile {
                size: f.size,
                time: f.time,
                hash: f.hash.clone().unwrap(),
            };
            (relative_key(&f.dest), known)
        })
        .collect()
}

/// The planned action of the file whose destination ends with `name`.
fn action_of(plan: &SyncPlan, name: &str) -> Action {
    plan.files
        .iter()
        .find(|f| f.dest.ends_with(name))
        .unwrap()
        .action
}

fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn assert_same_tree(source: &Path, dest: &Path) {
    let mut seen = 0;
    walk_files(source, Path::new(""), &mut |relative, _| {
        let (a, b) = (source.join(relative), dest.join(relative));
        assert_eq!(
            fs_err::read(&a).unwrap(),
            fs_err::read(&b).unwrap(),
            "{relative:?}"
        );
        assert_eq!(mtime(&a), mtime(&b), "{relative:?}");
        seen += 1;
    })
    .unwrap();
    let mut dest_files = 0;
    walk_files(dest, Path::new(""), &mut |_, _| dest_files += 1).unwrap();
    assert_eq!(seen, dest_files);
}

#[test]
fn first_sync_copies_everything_and_a_second_changes_nothing() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let options = SyncOptions::default();
    let first = run(&job, &options).unwrap();
    assert!(first.files.iter().all(|f| f.how == SyncedHow::Created));
    assert_eq!(first.bytes_copied, 300_000 + 10 + 6 + 12 + 1);
    assert_same_tree(&t.source, &t.dest);
    let unicode = first
        .files
        .iter()
        .find(|f| f.dest.ends_with("日本語ドライバ.dll"))
        .unwrap();
    assert_eq!(
        unicode.hash.as_deref(),
        Some(content_hash(b"unicode name").as_str())
    );
    // The resume log is gone after success.
    assert!(!t.dest.join(".passthru-sync-state.jsonl").exists());

    // Nothing changed: everything is kept, nothing is read (hashes come from the manifest).
    let options = SyncOptions {
        known: known_hashes(&first),
        ..SyncOptions::default()
    };
    let again = plan(&job, &options).unwrap();
    assert!(again.is_noop());
    let mut reports = 0;
    let report = execute(
        &again,
        &options,
        &mut |_| reports += 1,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(report.bytes_copied, 0);
    assert!(
        report
            .files
            .iter()
            .all(|f| f.how == SyncedHow::Kept && f.hash.is_some())
    );
}

#[test]
fn changes_are_found_by_size_then_time_then_content() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    run(&job, &SyncOptions::default()).unwrap();

    // 1. Size differs.
    write(&t.source.join("NvCamera/Color.fx"), b"shader v2");
    // 2. Touched, same content: hashed, kept, time corrected.
    let later = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&t.source.join("nv_dispi.inf"), later);
    // 3. Same size, new time, different content: hashed, replaced.
    write(
        &t.source.join("Gerätetreiber/日本語ドライバ.dll"),
        b"UNICODE NAME",
    );
    let plan = plan(&job, &SyncOptions::default()).unwrap();
    assert_eq!(
        action_of(&plan, "Color.fx"),
        Action::Replace { old_size: 6 }
    );
    assert_eq!(action_of(&plan, "nv_dispi.inf"), Action::CheckContent);
    assert_eq!(action_of(&plan, "日本語ドライバ.dll"), Action::CheckContent);
    assert_eq!(action_of(&plan, "nvlddmkm.sys"), Action::Keep);
    let report = execute_quietly(&plan, &SyncOptions::default()).unwrap();
    let how = |name: &str| {
        report
            .files
            .iter()
            .find(|f| f.dest.ends_with(name))
            .unwrap()
            .how
    };
    assert_eq!(how("Color.fx"), SyncedHow::Replaced);
    assert_eq!(how("nv_dispi.inf"), SyncedHow::Kept);
    assert_eq!(how("日本語ドライバ.dll"), SyncedHow::Replaced);
    assert_eq!(report.bytes_copied, 9 + 12);
    assert_same_tree(&t.source, &t.dest);
}

#[test]
fn same_size_and_time_hides_a_change_unless_checksum_mode() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    run(&job, &SyncOptions::default()).unwrap();
    let file = t.source.join("NvCamera/Color.fx");
    let time = mtime(&file);
    write(&file, b"SHADER");
    set_mtime(&file, time);

    // Documented limit: size and time match, so the default mode keeps the old content.
    let report = run(&job, &SyncOptions::default()).unwrap();
    assert_eq!(report.bytes_copied, 0);
    assert_eq!(
        fs_err::read(t.dest.join("NvCamera/Color.fx")).unwrap(),
        b"shader"
    );

    let checksum = SyncOptions {
        compare: CompareMode::Checksum,
        ..SyncOptions::default()
    };
    let report = run(&job, &checksum).unwrap();
    assert_eq!(report.bytes_copied, 6);
    assert_same_tree(&t.source, &t.dest);
}

#[test]
fn removes_only_inside_managed_dirs() {
    let t = trees();
    write(&t.source.join("a.dll"), b"a");
    write(&t.dest.join("pkg/a.dll"), b"old a");
    write(&t.dest.join("pkg/gone.dll"), b"dropped by the new driver");
    write(&t.dest.join("pkg/sub/deeper/gone.cfg"), b"x");
    write(&t.dest.join("elsewhere/keep.dll"), b"not ours");
    write(&t.dest.join("keep-too.txt"), b"not ours");
    let job = SyncJob {
        dest_root: t.dest.clone(),
        files: vec![FileToSync {
            source: t.source.join("a.dll"),
            dest: PathBuf::from("pkg/a.dll"),
        }],
        managed_dirs: vec![PathBuf::from("pkg")],
        ..SyncJob::default()
    };
    let plan = plan(&job, &SyncOptions::default()).unwrap();
    let removals: Vec<_> = plan.removals.iter().map(|r| r.dest.clone()).collect();
    assert_eq!(
        removals,
        [
            PathBuf::from("pkg/gone.dll"),
            PathBuf::from("pkg/sub/deeper/gone.cfg")
        ]
    );
    execute(
        &plan,
        &SyncOptions::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(!t.dest.join("pkg/gone.dll").exists());
    assert!(
        !t.dest.join("pkg/sub").exists(),
        "empty directories are removed too"
    );
    assert!(t.dest.join("elsewhere/keep.dll").exists());
    assert!(t.dest.join("keep-too.txt").exists());
    assert_eq!(fs_err::read(t.dest.join("pkg/a.dll")).unwrap(), b"a");
}

#[test]
fn read_only_destination_files_are_replaced_and_stay_read_only() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let read_only = SyncOptions {
        read_only: true,
        ..SyncOptions::default()
    };
    run(&job, &read_only).unwrap();
    let target = t.dest.join("NvCamera/Color.fx");
    assert_eq!(
        fs_err::metadata(&target).unwrap().permissions().mode() & 0o222,
        0
    );

    // A new driver version changes and drops read-only files; the default options do not ask
    // for read-only, but a replaced read-only file keeps the mark.
    write(&t.source.join("NvCamera/Color.fx"), b"shader v2");
    fs_err::remove_file(t.source.join("empty.bin")).unwrap();
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let report = run(&job, &SyncOptions::default()).unwrap();
    assert_eq!(report.removed, [PathBuf::from("empty.bin")]);
    assert_eq!(fs_err::read(&target).unwrap(), b"shader v2");
    assert_eq!(
        fs_err::metadata(&target).unwrap().permissions().mode() & 0o222,
        0
    );
    assert_same_tree(&t.source, &t.dest);
}

#[test]
fn a_run_with_nothing_to_do_writes_nothing() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let first = run(&job, &SyncOptions::default()).unwrap();
    let options = SyncOptions {
        known: known_hashes(&first),
        ..SyncOptions::default()
    };
    // Creating and removing the resume log would change the directory's time.
    let before = mtime(&t.dest);
    let report = run(&job, &options).unwrap();
    assert_eq!(report.bytes_copied, 0);
    assert_eq!(mtime(&t.dest), before);
}

#[test]
fn without_hashes_or_flushing_the_kernel_copies() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let options = SyncOptions {
        hashes: false,
        durable: false,
        ..SyncOptions::default()
    };
    let report = run(&job, &options).unwrap();
    assert_eq!(report.bytes_copied, 300_000 + 10 + 6 + 12 + 1);
    assert!(report.files.iter().all(|f| f.hash.is_none()));
    assert_same_tree(&t.source, &t.dest);
}

#[test]
fn progress_reaches_the_total() {
    let t = trees();
    populate(&t.source);
    let job = SyncJob::mirror(&t.source, &t.dest).unwrap();
    let plan = plan(&job, &SyncOptions::default()).unwrap();
    let mut last = None;
    execute(
        &plan,
        &SyncOptions::default(),
        &mut |p| {
            if let Some((files, bytes)) = last {
                assert!(p.files_done >= files && p.bytes_done >= bytes);
            }
            last = Some((p.files_done, p.bytes_done));
            assert!(p.bytes_per_second() >= 0.0);
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(last, Some((6, plan.summary().bytes_to_copy)));
}

#[test]
fn backups_keep_replaced_and_removed_files() {
    let t = trees();
    write(&t.source.join("a.dll"), b"new a");
    write(&t.dest.join("pkg/a.dll"), b"old a");
    write(&t.dest.join("pkg/b.dll"), b"old b");
    // Same size: only the (coarse, possibly equal) time tells them apart, so make it differ.
    set_mtime(
        &t.dest.join("pkg/a.dll"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1),
    );
    let backup = t.dest.join(".backup");
    let job = SyncJob {
        dest_root: t.dest.clone(),
        files: vec![FileToSync {
            source: t.source.join("a.dll"),
            dest: PathBuf::from("pkg/a.dll"),
        }],
        managed_dirs: vec![PathBuf::from("pkg")],
        backup_dir: Some(backup.clone()),
        state_file: None,
    };
    run(&job, &SyncOptions::default()).unwrap();
    assert_eq!(fs_err::read(backup.join("pkg/a.dll")).unwrap(), b"old a");
    assert_eq!(fs_err::read(backup.join("pkg/b.dll")).unwrap(), b"old b");
    assert_eq!(fs_err::read(t.dest.join("pkg/a.dll")).unwrap(), b"new a");
    assert!(!t.dest.join("pkg/b.dll").exists());
}

#[test]
fn bad_jobs_are_refused_with_the_path() {
    let t = trees();
    write(&t.source.join("a"), b"a");
    let mut job = SyncJob {
        dest_root: t.dest.clone(),
        files: vec![FileToSync {
            source: t.source.join("a"),
            dest: PathBuf::from("../escape"),
        }],
        ..SyncJob::default()
    };
    let error = plan(&job, &SyncOptions::default()).unwrap_err();
    assert!(error.to_string().contains("`../escape`"), "{error}");
    job.files[0].dest = PathBuf::from("x");
    job.files.push(job.files[0].clone());
    assert!(matches!(
        plan(&job, &SyncOptions::default()),
        Err(SyncError::DuplicateDestination(_))
    ));
    job.files.truncate(1);
    job.files[0].source = t.source.join("missing.dll");
    let error = plan(&job, &SyncOptions::default()).unwrap_err();
    assert!(error.to_string().contains("missing.dll"), "{error}");
    // A directory where a file belongs is reported with its path.
    job.files[0].source = t.source.join("a");
    fs_err::create_dir_all(t.dest.join("x/inner")).unwrap();
    let error = run(&job, &SyncOptions::default()).unwrap_err();
    assert!(error.to_string().contains("is a directory"), "{error}");
}

/// Root ignores permission bits, so the permission test runs itself again as `nobody`.
const PERMISSION_CHILD_ENV: &str = "PASSTHRU_SYNC_PERMISSION_DIR";

#[test]
fn permission_errors_name_the_path() {
    use std::os::unix::process::CommandExt;
    let root = tempfile::tempdir().unwrap();
    let base = root.path();
    write(&base.join("source/pkg/a.dll"), b"a");
    fs_err::create_dir_all(base.join("dest/locked")).unwrap();
    for (dir, mode) in [
        (base.to_path_buf(), 0o755),
        (base.join("source"), 0o755),
        (base.join("source/pkg"), 0o755),
        (base.join("dest"), 0o755),
        (base.join("dest/locked"), 0o555),
    ] {
        fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    fs_err::set_permissions(
        base.join("source/pkg/a.dll"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "sync::tests::permission_child",
            "--ignored",
            "--nocapture",
        ])
        .env(PERMISSION_CHILD_ENV, base);
    if euid == 0 {
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by permission_errors_name_the_path as an unprivileged user"]
fn permission_child() {
    let base =
        PathBuf::from(std::env::var_os(PERMISSION_CHILD_ENV).expect("run by the parent test"));
    let job = SyncJob::mirror(&base.join("source"), &base.join("dest/locked")).unwrap();
    let job = SyncJob {
        state_file: None,
        ..job
    };
    let error = run(&job, &SyncOptions::default()).unwrap_err();
    let message = error.to_string();
    println!("error: {message}");
    assert!(matches!(error, SyncError::Files(_)), "{error:?}");
    assert!(
        message.contains(&base.join("dest/locked/pkg").display().to_string()),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("permission denied"),
        "{message}"
    );
}
