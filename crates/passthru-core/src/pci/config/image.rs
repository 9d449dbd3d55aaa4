//! Bounds-checked little-endian reads from a config-space image of any length.
//!
//! Every read returns `None` past the end of the image instead of panicking, so decoders can
//! be written against untrusted bytes (odd-sized sysfs reads, truncated dumps, fuzz input).

/// A config-space image as read from sysfs `config` or an `lspci -xxxx` dump.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfigImage<'a> {
    bytes: &'a [u8],
}

impl<'a> ConfigImage<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Number of bytes in the image.
    pub(crate) fn len(self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn u8(self, offset: usize) -> Option<u8> {
        self.bytes.get(offset).copied()
    }

    pub(crate) fn u16(self, offset: usize) -> Option<u16> {
        let bytes = self.bytes.get(offset..offset.checked_add(2)?)?;
        Some(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    pub(crate) fn u32(self, offset: usize) -> Option<u32> {
        let bytes = self.bytes.get(offset..offset.checked_add(4)?)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_little_endian_and_stop_at_the_end() {
        let image = ConfigImage::new(&[0x86, 0x80, 0x02, 0x2f, 0xaa]);
        assert_eq!(image.u16(0), Some(0x8086));
        assert_eq!(image.u32(0), Some(0x2f02_8086));
        assert_eq!(image.u32(1), Some(0xaa2f_0280));
        assert_eq!(image.u32(2), None);
        assert_eq!(image.u16(4), None);
        assert_eq!(image.u8(4), Some(0xaa));
        assert_eq!(image.u8(usize::MAX), None);
        assert_eq!(image.u32(usize::MAX - 1), None);
    }
}
