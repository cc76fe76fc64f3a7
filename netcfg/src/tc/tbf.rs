//! The tbf qdisc's options, encoded as `tc qdisc add ... tbf rate R burst B latency L`
//! encodes them (iproute2 `tc/q_tbf.c`, `tc/tc_core.c`), and decoded from kernel dumps.
//!
//! TCA_OPTIONS = { TCA_TBF_PARMS (struct tc_tbf_qopt), TCA_TBF_BURST (u32 bytes),
//! [TCA_TBF_RATE64 (u64) when the rate does not fit 32 bits], TCA_TBF_RTAB (256 x u32) }.
//! Times are in psched ticks of 64 ns (the kernel's PSCHED_SHIFT = 6), i.e. `tc`'s
//! `tick_in_usec` = 15.625 on every kernel since 2.6.31; `tc` truncates to whole
//! microseconds first and we do the same so the bytes are identical.

use std::time::Duration;

use netlink_packet_core::DefaultNla;
use netlink_packet_route::tc::TcOption;

use super::units::{Rate, Size};
use super::TcError;

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RTAB: u16 = 2;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// Ethernet header added to the MTU for a full-size frame.
pub const ETH_HLEN: u64 = 14;
/// Default latency bound (queue limit = rate * latency + burst), as the CNI plugin uses.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(50);

/// A validated tbf configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    pub rate: Rate,
    pub burst: Size,
    pub latency: Duration,
}

impl Tbf {
    /// Validate `rate` and `burst` (default: [`Tbf::default_burst`]) for a link of `mtu`.
    pub fn new(rate: Rate, burst: Option<Size>, mtu: u32) -> Result<Self, TcError> {
        let frame = u64::from(mtu) + ETH_HLEN;
        let min = Rate(frame * 10);
        if rate < min {
            return Err(TcError::RateTooSmall { rate, mtu, min });
        }
        let burst = burst.unwrap_or_else(|| Self::default_burst(rate, mtu));
        if burst.0 < frame {
            return Err(TcError::BurstTooSmall { burst, mtu, frame });
        }
        Ok(Self {
            rate,
            burst,
            latency: DEFAULT_LATENCY,
        })
    }

    /// Ten milliseconds worth of traffic, at least ten full-size frames, at most 4 GiB-1.
    pub fn default_burst(rate: Rate, mtu: u32) -> Size {
        let frame = u64::from(mtu) + ETH_HLEN;
        Size((rate.0 / 100).max(frame * 10).min(u64::from(u32::MAX)))
    }

    /// The queue limit in bytes: rate * latency + burst (as `tc ... latency L`).
    pub fn limit(&self) -> u32 {
        let lim = self.rate.0 as f64 * self.latency.as_micros() as f64 / 1e6 + self.burst.0 as f64;
        lim.min(u32::MAX as f64) as u32
    }

    /// The TCA_OPTIONS attributes.
    pub fn options(&self) -> Vec<TcOption> {
        let rate32 = self.rate.0.min(u64::from(u32::MAX)) as u32;
        let mut parms = Vec::with_capacity(36);
        ratespec(&mut parms, rate32, 3);
        parms.extend_from_slice(&[0u8; 12]); // peakrate: none
        parms.extend_from_slice(&self.limit().to_ne_bytes());
        parms.extend_from_slice(&xmittime(rate32, self.burst.0).to_ne_bytes());
        parms.extend_from_slice(&0u32.to_ne_bytes()); // mtu (peakrate only)
        let mut out = vec![
            TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
            TcOption::Other(DefaultNla::new(
                TCA_TBF_BURST,
                (self.burst.0 as u32).to_ne_bytes().to_vec(),
            )),
        ];
        if self.rate.0 >= 1 << 32 {
            out.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                self.rate.0.to_ne_bytes().to_vec(),
            )));
        }
        let mut rtab = Vec::with_capacity(1024);
        for i in 0..256u64 {
            rtab.extend_from_slice(&xmittime(rate32, (i + 1) << 3).to_ne_bytes());
        }
        out.push(TcOption::Other(DefaultNla::new(TCA_TBF_RTAB, rtab)));
        out
    }
}

/// struct tc_ratespec for an Ethernet link, `cell_log` as `tc` computes for mtu 2047.
fn ratespec(out: &mut Vec<u8>, rate: u32, cell_log: u8) {
    out.push(cell_log);
    out.push(TC_LINKLAYER_ETHERNET);
    out.extend_from_slice(&0u16.to_ne_bytes()); // overhead
    out.extend_from_slice(&(-1i16).to_ne_bytes()); // cell_align
    out.extend_from_slice(&0u16.to_ne_bytes()); // mpu
    out.extend_from_slice(&rate.to_ne_bytes());
}

/// Time to send `size` bytes at `rate` bytes/s, in 64 ns ticks, truncated as `tc` does.
fn xmittime(rate: u32, size: u64) -> u32 {
    if rate == 0 {
        return 0;
    }
    let usec = (1e6 * (size as f64 / f64::from(rate))).min(u32::MAX as f64) as u32;
    (f64::from(usec) * 15.625) as u32
}

/// What the kernel reports for a tbf qdisc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TbfReadback {
    pub rate: Rate,
    /// Queue limit in bytes.
    pub limit: u32,
    /// Bucket size in bytes (from the reported buffer time).
    pub burst: Size,
}

/// Decode the TCA_OPTIONS of a dumped tbf qdisc. netlink-packet-route does not know tbf
/// and hands the whole nest over as one `TcOption::Other` whose value is the nested
/// attributes; pass that value here.
pub fn decode(nested: &[u8]) -> Option<TbfReadback> {
    let mut parms = None;
    let mut rate64 = None;
    let mut off = 0;
    while off + 4 <= nested.len() {
        let len = usize::from(u16::from_ne_bytes([nested[off], nested[off + 1]]));
        let kind = u16::from_ne_bytes([nested[off + 2], nested[off + 3]]) & 0x3fff;
        if len < 4 || off + len > nested.len() {
            break;
        }
        let v = &nested[off + 4..off + len];
        match kind {
            TCA_TBF_PARMS if v.len() >= 36 => parms = Some(v),
            TCA_TBF_RATE64 if v.len() >= 8 => {
                rate64 = Some(u64::from_ne_bytes(v[..8].try_into().ok()?))
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    let p = parms?;
    let u = |o: usize| u32::from_ne_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    let rate = rate64.unwrap_or(u64::from(u(8)));
    let limit = u(24);
    let ticks = u64::from(u(28));
    let burst = (ticks as u128 * 64 * rate as u128 / 1_000_000_000) as u64;
    Some(TbfReadback {
        rate: Rate(rate),
        limit,
        burst: Size(burst),
    })
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::Emitable;
    use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};

    use super::*;

    /// The tcmsg + attributes `tc` sent (captured with strace, see golden/README).
    fn encode(ifindex: i32, tbf: &Tbf) -> Vec<u8> {
        let mut m = TcMessage::with_index(ifindex);
        m.header.handle = TcHandle { major: 1, minor: 0 };
        m.header.parent = TcHandle::ROOT;
        m.attributes.push(TcAttribute::Kind("tbf".into()));
        m.attributes.push(TcAttribute::Options(tbf.options()));
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        buf
    }

    fn golden(hex: &str) -> Vec<u8> {
        let hex = hex.trim();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn tbf(rate: &str, burst: &str, latency_ms: u64) -> Tbf {
        let mut t = Tbf::new(rate.parse().unwrap(), Some(burst.parse().unwrap()), 1500).unwrap();
        t.latency = Duration::from_millis(latency_ms);
        t
    }

    #[test]
    fn bytes_equal_tc_100mbit() {
        let want = golden(include_str!("golden/tbf100m.hex"));
        assert_eq!(encode(3, &tbf("100mbit", "64kb", 50)), want);
    }

    #[test]
    fn bytes_equal_tc_1mbit() {
        let want = golden(include_str!("golden/tbf1m.hex"));
        assert_eq!(encode(3, &tbf("1mbit", "10kb", 100)), want);
    }

    #[test]
    fn bytes_equal_tc_10gbit() {
        let want = golden(include_str!("golden/tbf10g.hex"));
        assert_eq!(encode(3, &tbf("10gbit", "1mb", 25)), want);
    }

    #[test]
    fn bytes_equal_tc_40gbit_rate64() {
        let want = golden(include_str!("golden/tbf40g.hex"));
        assert_eq!(encode(3, &tbf("40gbit", "4mb", 10)), want);
    }

    #[test]
    fn validation_says_why() {
        let e = Tbf::new("10kbit".parse().unwrap(), None, 1500).unwrap_err();
        assert!(e.to_string().contains("too small for MTU 1500"), "{e}");
        let e = Tbf::new("10mbit".parse().unwrap(), Some(Size(1000)), 1500).unwrap_err();
        assert!(
            e.to_string().contains("smaller than one full-size frame"),
            "{e}"
        );
        let t = Tbf::new("100mbit".parse().unwrap(), None, 1500).unwrap();
        assert_eq!(t.burst, Size(125_000));
        assert_eq!(
            Tbf::default_burst("1mbit".parse().unwrap(), 1500),
            Size(15140)
        );
    }

    #[test]
    fn decode_roundtrip() {
        let t = tbf("100mbit", "64kb", 50);
        let opts = t.options();
        let mut nested = vec![0u8; opts.as_slice().buffer_len()];
        opts.as_slice().emit(&mut nested);
        let r = decode(&nested).unwrap();
        assert_eq!(r.rate, Rate(12_500_000));
        assert_eq!(r.limit, 690_536);
        assert!((r.burst.0 as i64 - 65536).abs() < 64, "{r:?}");
    }
}
