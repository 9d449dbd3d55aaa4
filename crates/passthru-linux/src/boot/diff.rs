//! Unified diffs of planned file changes, for `--dry-run` and the journal.

use std::path::Path;

use similar::TextDiff;

/// The unified diff from `before` to `after` (either may be absent), one line per element,
/// with `--- a/PATH` / `+++ b/PATH` headers (`/dev/null` for a missing side).
pub fn unified(path: &Path, before: Option<&[u8]>, after: Option<&[u8]>) -> Vec<String> {
    let (Ok(old), Ok(new)) = (
        std::str::from_utf8(before.unwrap_or_default()),
        std::str::from_utf8(after.unwrap_or_default()),
    ) else {
        return vec!["(binary contents change)".to_owned()];
    };
    let shown = path.display().to_string();
    let old_name = if before.is_some() {
        format!("a{shown}")
    } else {
        "/dev/null".to_owned()
    };
    let new_name = if after.is_some() {
        format!("b{shown}")
    } else {
        "/dev/null".to_owned()
    };
    let diff = TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string();
    text.lines().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_headers_and_changed_lines() {
        let lines = unified(
            Path::new("/etc/default/grub"),
            Some(b"A=1\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"),
            Some(b"A=1\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n"),
        );
        assert_eq!(lines[0], "--- a/etc/default/grub");
        assert_eq!(lines[1], "+++ b/etc/default/grub");
        assert!(lines.contains(&"-GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"".to_owned()));
        assert!(lines.contains(&"+GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"".to_owned()));
    }

    #[test]
    fn new_and_deleted_files_use_dev_null() {
        let created = unified(Path::new("/etc/x.conf"), None, Some(b"x\n"));
        assert_eq!(created[0], "--- /dev/null");
        let deleted = unified(Path::new("/etc/x.conf"), Some(b"x\n"), None);
        assert_eq!(deleted[1], "+++ /dev/null");
    }
}
