//! The SSRF guard: which destination addresses a webhook may reach in the production profile.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an address is one a webhook must not reach in production: loopback, private
/// (RFC 1918, unique-local), link-local (cloud metadata lives there), carrier-grade NAT,
/// unspecified, broadcast, multicast, documentation and benchmarking ranges, Teredo, and IPv4
/// addresses carried in IPv6 forms (mapped, compatible, translated, 6to4).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10, carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15, benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return is_forbidden(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link local fe80::/10
                || (first == 0x64 && second == 0xff9b) // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
                || (first == 0x2001 && second == 0x0db8) // documentation
                || (first == 0x2001 && second == 0) // Teredo 2001::/32: a relay picks the host
        }
    }
}

/// The IPv4 address an IPv6 form carries, where a translator or a tunnel, not the address's
/// owner, decides what it reaches: IPv4-mapped `::ffff:a.b.c.d`, SIIT-translated
/// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match v6.segments() {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(v4(hi, lo)),
        // `::1` and `::` are IPv6's own loopback and unspecified addresses, checked as such.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_destinations_and_allows_public_ones() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad} should be refused");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "2002:5db8:d822::1"] {
            assert!(!is_forbidden(good.parse().unwrap()), "{good} should be allowed");
        }
    }

    #[test]
    fn refuses_internal_ipv4_addresses_carried_in_ipv6_forms() {
        for bad in [
            "2002:7f00:1::1",                       // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::",                     // 6to4 of 169.254.169.254
            "2002:c0a8:101:1::1",                   // 6to4 of 192.168.1.1
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "2001::1",                              // Teredo, any
            "::127.0.0.1",                          // IPv4-compatible
            "::a9fe:a9fe",                          // IPv4-compatible 169.254.169.254
            "::ffff:0:10.0.0.1",                    // SIIT-translated
            "64:ff9b:1::a00:1",                     // local-use NAT64
        ] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad} should be refused");
        }
    }
}
