//! The contents of the files passthru owns, and of the lines it adds to files it shares.
//!
//! Every file says who wrote it and how to remove it, in plain words, because the person who
//! finds it may be repairing a host that does not boot.

use passthru_core::pci::PciAddress;

use super::policy::ADDRESS_SWITCH;

/// passthru's modprobe configuration.
pub const MODPROBE_CONF: &str = "/etc/modprobe.d/passthru-vfio.conf";
/// passthru's udev rule for binding by address.
pub const UDEV_RULE: &str = "/etc/udev/rules.d/05-passthru-vfio.rules";
/// passthru's dracut configuration (the `.conf` extension is required: dracut.conf(5)
/// ignores other files).
pub const DRACUT_CONF: &str = "/etc/dracut.conf.d/passthru-vfio.conf";
/// passthru's mkinitcpio drop-in.
pub const MKINITCPIO_DROPIN: &str = "/etc/mkinitcpio.conf.d/passthru-vfio.conf";
/// passthru's initramfs-tools hook that copies the udev rule into the image.
pub const INITRAMFS_TOOLS_HOOK: &str = "/etc/initramfs-tools/hooks/passthru-vfio";

const HEADER: &str = "# Written by passthru (`passthru assign DEVICE --persistent`).\n\
# `passthru release DEVICE --persistent` or `passthru undo` removes it; see docs/persistent.md.\n";

/// `/etc/modprobe.d/passthru-vfio.conf`: vfio-pci loads before each host driver.
pub fn modprobe_conf(softdeps: &[String]) -> String {
    let mut text = String::from(HEADER);
    text.push_str(
        "# Load vfio-pci before the drivers that would otherwise take the devices passthru\n\
         # gives to virtual machines, so that vfio-pci claims them first.\n",
    );
    for module in softdeps {
        text.push_str(&format!("softdep {module} pre: vfio-pci\n"));
    }
    text
}

/// The udev rule that binds each address to vfio-pci as soon as the device appears, before
/// its host driver loads: it sets `driver_override`, loads vfio-pci (which then claims it),
/// and asks the PCI core to probe the device again in case vfio-pci was loaded already.
/// It only acts when the kernel command line has [`ADDRESS_SWITCH`].
///
/// udev handles sibling devices in parallel, so an identical twin's event can load the host
/// driver, which then binds this device before its own event sets `driver_override`; a
/// probe does not move a bound device, so the rule unbinds any driver other than vfio-pci
/// first (as driverctl does). Only `readlink` and shell built-ins are used: a minimal
/// initramfs has no `basename` or `grep`. `$$` is udev's escape for a literal `$`.
pub fn udev_rule(addresses: &[PciAddress]) -> String {
    let (name, value) = ADDRESS_SWITCH
        .split_once('=')
        .unwrap_or((ADDRESS_SWITCH, "1"));
    let mut text = String::from(HEADER);
    text.push_str(&format!(
        "# Binds these PCI functions to vfio-pci by address, before any host driver loads.\n\
         # It only acts when the kernel command line has {ADDRESS_SWITCH}: remove that at the\n\
         # boot menu to start the host without it.\n\
         ACTION!=\"add\", GOTO=\"passthru_vfio_end\"\n\
         SUBSYSTEM!=\"pci\", GOTO=\"passthru_vfio_end\"\n\
         IMPORT{{cmdline}}=\"{name}\"\n\
         ENV{{{name}}}!=\"{value}\", GOTO=\"passthru_vfio_end\"\n"
    ));
    for address in addresses {
        text.push_str(&format!(
            "KERNEL==\"{address}\", ATTR{{driver_override}}=\"vfio-pci\", \
             RUN{{builtin}}+=\"kmod load vfio-pci\", \
             RUN+=\"/bin/sh -c 'd=/sys/bus/pci/devices/%k; \
             case $$(readlink $$d/driver) in */vfio-pci) ;; ?*) echo %k > $$d/driver/unbind ;; esac; \
             echo %k > /sys/bus/pci/drivers_probe'\"\n"
        ));
    }
    text.push_str("LABEL=\"passthru_vfio_end\"\n");
    text
}

/// dracut: load the vfio modules early, and carry the udev rule when binding by address.
/// dracut wants a space after the opening and before the closing quote of `+=` values.
pub fn dracut_conf(modules: &[String], with_rule: bool) -> String {
    let mut text = String::from(HEADER);
    text.push_str(&format!("force_drivers+=\" {} \"\n", modules.join(" ")));
    if with_rule {
        text.push_str(&format!("install_items+=\" {UDEV_RULE} \"\n"));
    }
    text
}

/// mkinitcpio lines (for the drop-in or passthru's block in `mkinitcpio.conf`); they append,
/// so the user's own `MODULES` and `FILES` stay as they are.
pub fn mkinitcpio_lines(modules: &[String], with_rule: bool) -> Vec<String> {
    let mut lines = vec![format!("MODULES+=({})", modules.join(" "))];
    if with_rule {
        lines.push(format!("FILES+=({UDEV_RULE})"));
    }
    lines
}

/// The mkinitcpio drop-in file.
pub fn mkinitcpio_dropin(modules: &[String], with_rule: bool) -> String {
    let mut text = String::from(HEADER);
    for line in mkinitcpio_lines(modules, with_rule) {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The initramfs-tools hook that copies the udev rule into the image (initramfs-tools copies
/// only a fixed list of udev rules by itself).
pub fn initramfs_tools_hook() -> String {
    format!(
        "#!/bin/sh\n{HEADER}# Copies passthru's early vfio-pci binding rule into the initramfs.\n\
         PREREQ=\"udev\"\n\
         prereqs() {{ echo \"$PREREQ\"; }}\n\
         case \"$1\" in\n\
         prereqs) prereqs; exit 0 ;;\n\
         esac\n\
         . /usr/share/initramfs-tools/hook-functions\n\
         mkdir -p \"${{DESTDIR}}/lib/udev/rules.d\"\n\
         cp -p {UDEV_RULE} \"${{DESTDIR}}/lib/udev/rules.d/\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dracut_values_have_the_spaces_dracut_needs() {
        let text = dracut_conf(&["vfio_pci".into(), "vfio".into()], true);
        assert!(text.contains("force_drivers+=\" vfio_pci vfio \"\n"));
        assert!(text.contains(&format!("install_items+=\" {UDEV_RULE} \"")));
    }

    #[test]
    fn udev_rule_is_gated_by_the_kernel_parameter() {
        let address: PciAddress = "0000:01:00.0".parse().unwrap();
        let rule = udev_rule(&[address]);
        assert!(rule.contains("IMPORT{cmdline}=\"passthru.vfio\""));
        assert!(rule.contains("ENV{passthru.vfio}!=\"1\", GOTO=\"passthru_vfio_end\""));
        assert!(rule.contains("KERNEL==\"0000:01:00.0\", ATTR{driver_override}=\"vfio-pci\""));
        assert!(rule.ends_with("LABEL=\"passthru_vfio_end\"\n"));
    }
}
