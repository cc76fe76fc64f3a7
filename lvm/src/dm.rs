//! Device-mapper's table-status ioctl, what `dmsetup status <name>` prints, read without a
//! process: a thin snapshot root checks its pool's fill level this way, and spawning
//! `dmsetup` or `lvm` for it costs more under emulation than the snapshot itself.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
/// The reply buffer: one target's status line fits many times.
const BUF_BYTES: usize = 16 * 1024;
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
/// Report without flushing (for a thin pool: without committing its metadata first).
const DM_NOFLUSH_FLAG: u32 = 1 << 11;

/// `struct dm_ioctl` of `linux/dm-ioctl.h` (interface version 4).
#[repr(C)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// `struct dm_target_spec`; the target's status string follows it.
#[repr(C)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

nix::ioctl_readwrite!(dm_table_status, 0xfd, 12, DmIoctl);

fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The status of the device-mapper device `name`, one line per target as `dmsetup status
/// --noflush` prints it: `<start> <length> <target type> <status>`.
pub fn status(name: &str) -> std::io::Result<String> {
    let bad = |why: &str| std::io::Error::other(format!("device-mapper status of {name}: {why}"));
    if name.len() >= DM_NAME_LEN || name.contains('\0') {
        return Err(bad("name too long"));
    }
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mapper/control")?;
    // u64 words: the buffer is aligned for both structs.
    let mut buf = vec![0u64; BUF_BYTES / 8];
    let head = std::mem::size_of::<DmIoctl>();
    // SAFETY: the buffer is BUF_BYTES long and 8-aligned, larger than a DmIoctl, which is
    // plain old data (every bit pattern valid).
    let io = unsafe { &mut *(buf.as_mut_ptr() as *mut DmIoctl) };
    io.version = [4, 0, 0];
    io.data_size = BUF_BYTES as u32;
    io.data_start = head as u32;
    io.flags = DM_NOFLUSH_FLAG;
    io.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `io` heads a buffer of `data_size` bytes, as the ioctl requires; the kernel
    // writes no more than that.
    unsafe { dm_table_status(control.as_raw_fd(), io) }.map_err(std::io::Error::from)?;
    if io.flags & DM_BUFFER_FULL_FLAG != 0 {
        return Err(bad("reply larger than the buffer"));
    }
    let (count, start) = (io.target_count as usize, io.data_start as usize);
    // SAFETY: a view of the same BUF_BYTES-long buffer as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, BUF_BYTES) };
    let spec_len = std::mem::size_of::<DmTargetSpec>();
    let mut out = String::new();
    let mut at = start;
    for _ in 0..count {
        if at % 8 != 0 || at + spec_len > BUF_BYTES {
            return Err(bad("malformed reply"));
        }
        // SAFETY: `at` is in bounds and 8-aligned (checked); DmTargetSpec is plain old data.
        let spec = unsafe { &*(bytes.as_ptr().add(at) as *const DmTargetSpec) };
        out.push_str(&format!(
            "{} {} {} {}\n",
            spec.sector_start,
            spec.length,
            c_str(&spec.target_type),
            c_str(&bytes[at + spec_len..])
        ));
        if spec.next == 0 {
            break;
        }
        at = start + spec.next as usize;
    }
    Ok(out)
}

/// The device-mapper name LVM gives layer `layer` of `vg/lv` (dashes in names doubled).
pub fn lvm_name(vg: &str, lv: &str, layer: &str) -> String {
    format!(
        "{}-{}-{layer}",
        vg.replace('-', "--"),
        lv.replace('-', "--")
    )
}

/// A thin pool's data and metadata use in percent, from its status line (`<start> <len>
/// thin-pool <transaction> <used>/<total> metadata blocks <used>/<total> data blocks ...`).
pub fn thin_pool_percent(status: &str) -> Option<(f64, f64)> {
    let f: Vec<&str> = status.lines().next()?.split_whitespace().collect();
    if f.get(2) != Some(&"thin-pool") {
        return None;
    }
    let pct = |s: &str| -> Option<f64> {
        let (used, total) = s.split_once('/')?;
        let (used, total): (u64, u64) = (used.parse().ok()?, total.parse().ok()?);
        (total > 0).then(|| used as f64 * 100.0 / total as f64)
    };
    let meta = pct(f.get(4)?)?;
    let data = pct(f.get(5)?)?;
    Some((data, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<DmIoctl>(), 312);
        assert_eq!(std::mem::size_of::<DmTargetSpec>(), 40);
    }

    #[test]
    fn names_and_pool_status_parse() {
        assert_eq!(lvm_name("vg-0", "my-pool", "tpool"), "vg--0-my--pool-tpool");
        let s = "0 1843200 thin-pool 12 13/4096 360/14400 - rw no_discard_passdown error_if_no_space - 1024\n";
        let (d, m) = thin_pool_percent(s).unwrap();
        assert!((d - 2.5).abs() < 1e-9, "{d}");
        assert!((m - 13.0 * 100.0 / 4096.0).abs() < 1e-9, "{m}");
        assert_eq!(thin_pool_percent("0 8 linear 7:0 0"), None);
        assert_eq!(thin_pool_percent("0 8 thin-pool 1 x/y 1/0"), None);
        assert_eq!(thin_pool_percent(""), None);
    }
}
