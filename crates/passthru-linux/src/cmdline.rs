//! The kernel command line (`/proc/cmdline`): splitting it into parameters and picking the
//! ones that matter for passthrough.

use crate::inventory::model::KernelParam;

/// Splits a kernel command line into `name[=value]` parameters the way the kernel does
/// (`next_arg` in lib/cmdline.c): whitespace separates, double quotes group, and `--` ends
/// the kernel's part (the rest belongs to init).
pub fn parse(cmdline: &str) -> Vec<KernelParam> {
    let mut params = Vec::new();
    let mut chars = cmdline.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut token = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() && !quoted {
                break;
            }
            chars.next();
            if c == '"' {
                quoted = !quoted;
            } else {
                token.push(c);
            }
        }
        if token == "--" {
            break;
        }
        let (name, value) = match token.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (token, None),
        };
        params.push(KernelParam { name, value });
    }
    params
}

/// Whether a parameter affects IOMMU, VFIO, KVM or the boot framebuffer.
pub fn is_passthrough_related(param: &KernelParam) -> bool {
    let name = param.name.as_str();
    let module_param = |module: &str| {
        name.strip_prefix(module)
            .is_some_and(|rest| rest.starts_with('.'))
    };
    matches!(
        name,
        "intel_iommu"
            | "amd_iommu"
            | "iommu"
            | "pcie_acs_override"
            | "rd.driver.pre"
            | "initcall_blacklist"
            | "modprobe.blacklist"
            | "module_blacklist"
    ) || name.starts_with("iommu.")
        || [
            "vfio",
            "vfio-pci",
            "vfio_pci",
            "vfio_iommu_type1",
            "kvm",
            "kvm_intel",
            "kvm_amd",
            "kvm-intel",
            "kvm-amd",
        ]
        .into_iter()
        .any(module_param)
        || (name == "video"
            && param
                .value
                .as_deref()
                .is_some_and(|value| value.contains("efifb")))
}

/// The value of the last parameter called `name` (the kernel lets later ones win).
pub fn value_of<'a>(params: &'a [KernelParam], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|param| param.name == name)
        .map(|param| param.value.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_quotes_and_stops_at_double_dash() {
        let params = parse(
            "BOOT_IMAGE=/vmlinuz root=UUID=abc ro quiet intel_iommu=on iommu=pt \"acpi_osi=Windows 2015\" -- --init-arg x=1",
        );
        let names: Vec<&str> = params.iter().map(|param| param.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "BOOT_IMAGE",
                "root",
                "ro",
                "quiet",
                "intel_iommu",
                "iommu",
                "acpi_osi"
            ]
        );
        assert_eq!(params[1].value.as_deref(), Some("UUID=abc"));
        assert_eq!(params[6].value.as_deref(), Some("Windows 2015"));
        assert_eq!(value_of(&params, "intel_iommu"), Some("on"));
        assert_eq!(value_of(&params, "ro"), Some(""));
    }

    #[test]
    fn picks_passthrough_parameters() {
        let params = parse(
            "quiet amd_iommu=on iommu=pt vfio-pci.ids=10de:2204,10de:1aef pcie_acs_override=downstream,multifunction video=efifb:off video=HDMI-A-1:1920x1080 kvm.ignore_msrs=1 kvmfoo=1",
        );
        let picked: Vec<String> = params
            .iter()
            .filter(|param| is_passthrough_related(param))
            .map(|param| param.name.clone())
            .collect();
        assert_eq!(
            picked,
            [
                "amd_iommu",
                "iommu",
                "vfio-pci.ids",
                "pcie_acs_override",
                "video",
                "kvm.ignore_msrs"
            ]
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,80}") {
            let _ = parse(&text);
        }
    }
}
