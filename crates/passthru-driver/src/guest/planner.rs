//! Making the plan of a guest driver sync: inspect the guest (mounted, then dismounted again),
//! compare, and list every file and registry value that will change.

use std::collections::BTreeSet;

use passthru_core::plan::Plan;

use super::adopt;
use super::host::{GuestHost, RegKey};
use super::manifest::{GuestManifest, MANIFEST_PATH, ManifestValue};
use super::steps::{
    GuestStep, ManifestHeader, PackageSync, PlannedGuestFile, PlannedPromotion, RetiredPackage,
    ValueChange, VolumeRef, known_hashes, sync_options,
};
use super::{GuestError, SYSTEM_HIVE, SystemVolume, with_system_volume};
use crate::guest_path::GuestPath;
use crate::package::{RegData, ResolvedDriver, Vendor};
use crate::sync::{self, FileToSync, SyncJob};

/// Where the guest's SYSTEM hive is loaded while passthru edits it.
pub const HIVE_MOUNT: &str = "PASSTHRU_GUEST_SYSTEM";

/// Where replaced and removed files are kept for undo, one folder per operation.
pub const BACKUP_ROOT: &str = r"Windows\System32\HostDriverStore\.passthru-backup";

/// What to sync where.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The VM.
    pub vm: String,
    /// The host's driver for the GPU (see [`crate::package::resolve`]).
    pub driver: ResolvedDriver,
    /// Names the backup folder; use the journal's operation id format (sortable, unique).
    pub operation_id: String,
}

/// A one-step plan that shuts the VM down (undo starts it again), for when the user agreed.
pub fn plan_shutdown(vm: &str) -> Plan<GuestStep> {
    let mut plan = Plan::new(format!("shut down VM {vm} for driver sync"));
    plan.steps.push(GuestStep::ShutDownVm { vm: vm.to_owned() });
    plan
}

/// Plans `driver sync`: the VM must be off; its system disk is mounted to compare and
/// dismounted again before this returns.
pub fn plan_driver_sync(
    host: &mut dyn GuestHost,
    request: &SyncRequest,
) -> Result<Plan<GuestStep>, GuestError> {
    with_system_volume(host, &request.vm, |host, volume| {
        plan_on_volume(host, request, volume)
    })
}

fn plan_on_volume(
    host: &mut dyn GuestHost,
    request: &SyncRequest,
    volume: &SystemVolume,
) -> Result<Plan<GuestStep>, GuestError> {
    let driver = &request.driver;
    let root = &volume.root;
    let backup = GuestPath::new(BACKUP_ROOT).join(&request.operation_id);
    let volume_ref = VolumeRef {
        vhd: volume.vhd.clone(),
        partition: volume.partition,
    };
    let mut plan = Plan::new(format!(
        "driver sync {} ({}) into VM {}",
        driver.description,
        driver
            .driver_ver
            .map(|v| v.version_string())
            .unwrap_or_default(),
        request.vm
    ));
    plan.notes.push(format!(
        "system volume: {} partition {}",
        volume.vhd, volume.partition
    ));
    plan.notes.extend(driver.notes.iter().cloned());

    let manifest_path = GuestPath::new(MANIFEST_PATH).on(root);
    let before_manifest = match fs_err::read(&manifest_path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error.into()),
    };
    let old_manifest = before_manifest
        .as_deref()
        .and_then(|text| GuestManifest::from_json(text.as_bytes()).ok());

    // Files, compared with the previous version's folders where the new ones start from them.
    let adoptions = old_manifest
        .as_ref()
        .map(|old| adopt::adoptions(old, driver, root))
        .unwrap_or_default();
    let renamed = |relative: &std::path::Path| {
        adopt::before(&GuestPath::new(&sync::relative_key(relative)), &adoptions).to_relative()
    };
    let job = SyncJob {
        dest_root: root.clone(),
        files: driver
            .package_sync_files()
            .into_iter()
            .map(|file| FileToSync {
                dest: renamed(&file.dest),
                source: file.source,
            })
            .collect(),
        managed_dirs: driver.managed_dirs().iter().map(|d| renamed(d)).collect(),
        backup_dir: Some(backup.on(root)),
        state_file: Some(GuestPath::new(super::steps::STATE_FILE).on(root)),
    };
    let compared = sync::plan(&job, &sync_options(known_hashes(root)))?;
    let in_guest = |relative: &std::path::Path| {
        adopt::after(&GuestPath::new(&sync::relative_key(relative)), &adoptions)
    };
    let files = compared
        .files
        .iter()
        .map(|file| PlannedGuestFile {
            source: file.source.clone(),
            dest: in_guest(&file.dest),
            size: file.size,
            action: file.action,
        })
        .collect();
    let removals = compared
        .removals
        .iter()
        .map(|r| in_guest(&r.dest))
        .collect();
    let managed: Vec<GuestPath> = driver
        .packages
        .iter()
        .map(|p| p.guest_dir.clone())
        .collect();

    plan.steps.push(GuestStep::MountSystemDisk {
        vm: request.vm.clone(),
        vhd: volume.vhd.clone(),
        partition: volume.partition,
    });
    if let Some(old) = &old_manifest {
        let retired: Vec<RetiredPackage> = old
            .packages
            .iter()
            .filter(|p| {
                !driver
                    .packages
                    .iter()
                    .any(|n| n.name.eq_ignore_ascii_case(&p.name))
            })
            .map(|p| RetiredPackage {
                dir: GuestPath::host_driver_store_package(&p.name),
            })
            .filter(|p| p.dir.on(root).exists() && !adoptions.iter().any(|a| a.from == p.dir))
            .collect();
        if !retired.is_empty() {
            plan.steps.push(GuestStep::RetirePackages {
                volume: volume_ref.clone(),
                packages: retired,
                backup: backup.clone(),
            });
        }
    }
    for adoption in &adoptions {
        plan.steps.push(GuestStep::AdoptPackage {
            volume: volume_ref.clone(),
            from: adoption.from.clone(),
            to: adoption.to.clone(),
        });
    }
    plan.steps.push(GuestStep::SyncPackages(PackageSync {
        volume: volume_ref.clone(),
        files,
        removals,
        managed,
        backup: backup.clone(),
        adopted: adoptions,
    }));

    // System32 / SysWOW64.
    let mut promotions = Vec::new();
    let has_wow64 = GuestPath::new(r"Windows\SysWOW64").on(root).is_dir();
    for promotion in &driver.promotions {
        let Some(package) = driver.packages.iter().find(|p| p.name == promotion.package) else {
            continue;
        };
        if promotion
            .target
            .starts_with(&GuestPath::new(r"Windows\SysWOW64"))
            && !has_wow64
        {
            plan.notes.push(format!(
                "{} is skipped: the guest has no SysWOW64 (not a 64-bit Windows with 32-bit support)",
                promotion.target
            ));
            continue;
        }
        let target = promotion.target.on(root);
        if promotion_in_place(&promotion.source, &target, promotion.when_newer)? {
            continue;
        }
        promotions.push(PlannedPromotion {
            source: package.guest_dir.join(&promotion.source_relative),
            target: promotion.target.clone(),
            when_newer: promotion.when_newer,
            existed: target.exists(),
        });
    }
    let promotion_targets: Vec<GuestPath> = driver
        .promotions
        .iter()
        .map(|p| p.target.clone())
        .filter(|target| target.on(root).exists() || promotions.iter().any(|p| &p.target == target))
        .collect();
    if !promotions.is_empty() {
        plan.steps.push(GuestStep::PromoteFiles {
            volume: volume_ref.clone(),
            files: promotions,
            backup: backup.clone(),
        });
    }

    // NVIDIA's kernel service in the offline SYSTEM hive.
    let mut registry = Vec::new();
    if let (Some(Vendor::Nvidia), Some(service)) = (driver.vendor, &driver.kernel_service) {
        let writes = plan_service_key(host, volume, service, &mut plan.notes)?;
        if !writes.is_empty() {
            plan.steps.push(GuestStep::LoadSystemHive {
                volume: volume_ref.clone(),
                mount: HIVE_MOUNT.to_owned(),
            });
            for (key, created, values) in writes {
                for value in &values {
                    registry.push(ManifestValue {
                        key: key.0[HIVE_MOUNT.len() + 1..].to_owned(),
                        name: value.name.clone(),
                        data: value.data.clone(),
                    });
                }
                plan.steps.push(GuestStep::WriteRegistry {
                    key,
                    created,
                    values,
                    volume: Some(volume_ref.clone()),
                });
            }
            plan.steps.push(GuestStep::UnloadSystemHive {
                volume: volume_ref.clone(),
                mount: HIVE_MOUNT.to_owned(),
            });
        }
    }

    plan.steps.push(GuestStep::WriteManifest {
        volume: volume_ref.clone(),
        header: ManifestHeader {
            vm: request.vm.clone(),
            device: driver.description.clone(),
            driver_version: driver
                .driver_ver
                .map(|v| v.version_string())
                .unwrap_or_default(),
            packages: driver
                .packages
                .iter()
                .map(|p| {
                    let version = p.driver_ver.map(|v| v.version_string()).unwrap_or_default();
                    (p.guest_dir.clone(), version)
                })
                .collect(),
            promotions: promotion_targets,
            registry,
        },
        before: before_manifest,
    });
    plan.steps.push(GuestStep::DismountSystemDisk {
        vm: request.vm.clone(),
        vhd: volume.vhd.clone(),
        partition: volume.partition,
    });
    note_old_backups(root, &mut plan.notes);
    if nothing_to_do(&plan, old_manifest.as_ref(), driver) {
        plan.steps.clear();
        plan.notes.push(format!(
            "the guest already has driver {} exactly as on the host: nothing to do",
            driver
                .driver_ver
                .map(|v| v.version_string())
                .unwrap_or_default()
        ));
    }
    Ok(plan)
}

/// Whether a promotion's target already holds the host file (same size and time), or, for a
/// `WhenNewer` promotion, a file at least as new.
fn promotion_in_place(
    source: &std::path::Path,
    target: &std::path::Path,
    when_newer: bool,
) -> Result<bool, GuestError> {
    let Ok(target_meta) = fs_err::metadata(target) else {
        return Ok(false);
    };
    let source_meta = fs_err::metadata(source)?;
    let time = |meta: &std::fs::Metadata| meta.modified().map(sync::FileTime::from_system);
    let (source_time, target_time) = (time(&source_meta)?, time(&target_meta)?);
    if when_newer && target_time >= source_time {
        return Ok(true);
    }
    Ok(target_meta.len() == source_meta.len() && source_time.same_as(target_time))
}

/// A plan whose file, promotion and registry steps would change nothing, for a guest whose
/// manifest already records this driver.
fn nothing_to_do(
    plan: &Plan<GuestStep>,
    manifest: Option<&GuestManifest>,
    driver: &ResolvedDriver,
) -> bool {
    let Some(manifest) = manifest else {
        return false;
    };
    let version = driver
        .driver_ver
        .map(|v| v.version_string())
        .unwrap_or_default();
    let same_packages = manifest.packages.len() == driver.packages.len()
        && driver.packages.iter().all(|p| {
            manifest
                .packages
                .iter()
                .any(|m| m.name.eq_ignore_ascii_case(&p.name))
        });
    let changes = plan.steps.iter().any(|step| match step {
        GuestStep::SyncPackages(sync) => {
            !sync.removals.is_empty() || sync.files.iter().any(|f| f.action != sync::Action::Keep)
        }
        GuestStep::MountSystemDisk { .. }
        | GuestStep::DismountSystemDisk { .. }
        | GuestStep::WriteManifest { .. } => false,
        _ => true,
    });
    manifest.driver_version == version && same_packages && !changes
}

type KeyWrites = Vec<(RegKey, bool, Vec<ValueChange>)>;

/// Reads the hive (loaded, then unloaded again) to plan the service key in every control set
/// the guest may boot: `Select\Current`, `Default` and `LastKnownGood`.
fn plan_service_key(
    host: &mut dyn GuestHost,
    volume: &SystemVolume,
    service: &crate::package::KernelService,
    notes: &mut Vec<String>,
) -> Result<KeyWrites, GuestError> {
    let file = GuestPath::new(SYSTEM_HIVE).on(&volume.root);
    host.load_hive(&file, HIVE_MOUNT)?;
    let result = (|| -> Result<KeyWrites, GuestError> {
        let select = RegKey(HIVE_MOUNT.to_owned()).join("Select");
        let mut sets = BTreeSet::new();
        for name in ["Current", "Default", "LastKnownGood"] {
            if let Some(RegData::Dword(number)) = host.read_value(&select, name)?
                && number > 0
            {
                sets.insert(number);
            }
        }
        if sets.is_empty() {
            notes.push(
                "the guest's SYSTEM hive has no Select values; ControlSet001 is used".to_owned(),
            );
            sets.insert(1);
        }
        let mut wanted = vec![(
            "ImagePath".to_owned(),
            RegData::ExpandSz(service.guest_image_path.clone()),
        )];
        wanted.extend(service.values.iter().cloned());
        let mut writes = Vec::new();
        for set in sets {
            let key = RegKey(format!(
                r"{HIVE_MOUNT}\ControlSet{set:03}\Services\{}",
                service.name
            ));
            let created = !host.key_exists(&key)?;
            let mut values = Vec::new();
            for (name, data) in &wanted {
                let before = if created {
                    None
                } else {
                    host.read_value(&key, name)?
                };
                if before.as_ref() != Some(data) {
                    values.push(ValueChange {
                        name: name.clone(),
                        data: data.clone(),
                        before,
                    });
                }
            }
            if !values.is_empty() {
                writes.push((key, created, values));
            }
        }
        Ok(writes)
    })();
    let unloaded = host.unload_hive(HIVE_MOUNT);
    let writes = result?;
    unloaded?;
    Ok(writes)
}

fn note_old_backups(root: &std::path::Path, notes: &mut Vec<String>) {
    let dir = GuestPath::new(BACKUP_ROOT).on(root);
    let Ok(entries) = fs_err::read_dir(&dir) else {
        return;
    };
    let count = entries.filter_map(Result::ok).count();
    if count > 0 {
        notes.push(format!(
            "{count} backup folder(s) of earlier syncs are in {BACKUP_ROOT} (they let `passthru undo` \
             restore those syncs); delete them inside the guest when no longer needed"
        ));
    }
}

/// What a sync would write into a guest that has nothing yet, without looking at the guest:
/// for `--dry-run` while the VM runs (its disk cannot be mounted then).
pub fn unverified_listing(driver: &ResolvedDriver) -> Vec<String> {
    let mut lines = Vec::new();
    for package in &driver.packages {
        for file in &package.files {
            lines.push(format!(
                "copy    {} ({} bytes)",
                package.guest_dir.join(&file.relative),
                file.size
            ));
        }
    }
    for promotion in &driver.promotions {
        lines.push(format!(
            "copy    {} <- {}\\{}",
            promotion.target, promotion.package, promotion.source_relative
        ));
    }
    if let (Some(Vendor::Nvidia), Some(service)) = (driver.vendor, &driver.kernel_service) {
        lines.push(format!(
            r"set     HKLM\SYSTEM\ControlSet00N\Services\{}\ImagePath = REG_EXPAND_SZ {}",
            service.name, service.guest_image_path
        ));
    }
    lines
}
