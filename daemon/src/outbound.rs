//! Where the device may send requests of its own (webhook deliveries, `photo_url` fetches):
//! address classes no client may point it at (loopback, link-local with the cloud metadata
//! addresses, the device's own addresses, and the IPv6 forms that carry such an IPv4 address),
//! the operator's allow-list (`webhooks.allow`), and name resolution that checks every address a
//! name has and pins the connection to the one checked. Proxies from the environment are never
//! used for these requests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// How an error of [`OutboundPolicy::resolve`] for a name without addresses begins.
const UNRESOLVED: &str = "cannot resolve ";

/// How long a name may take to resolve.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One entry of an allow-list.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// `*`: any address that is not refused.
    Any,
    /// `10.0.0.0/8`, `2001:db8::/32`, or one address.
    Net(IpAddr, u8),
    /// A host name, exactly (case-insensitive): its addresses are allowed whatever they are.
    Host(String),
}

/// Which destinations a kind of outbound request may reach.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    rules: Vec<Rule>,
    /// Only globally routable addresses (as `photo_url` needs), on top of the refusals.
    public_only: bool,
    own: Vec<IpAddr>,
}

impl OutboundPolicy {
    /// Webhooks: `allow` entries are `*`, CIDRs, addresses or host names; an address or name
    /// listed explicitly is allowed even in a refused class (a receiver on this very device).
    pub fn webhooks(allow: &[String]) -> Result<Self, String> {
        let rules = allow.iter().map(|a| parse_rule(a)).collect::<Result<_, _>>()?;
        Ok(Self { rules, public_only: false, own: own_addresses() })
    }

    /// `photo_url` fetches: public addresses only.
    pub fn public_only() -> Self {
        Self { rules: vec![Rule::Any], public_only: true, own: own_addresses() }
    }

    /// Whether a connection to `ip` (the name `host` resolved to it) may be made.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let explicit = self.rules.iter().any(|r| match r {
            Rule::Net(net, prefix) => in_net(ip, canonical(*net), *prefix),
            Rule::Host(h) => h.eq_ignore_ascii_case(host),
            Rule::Any => false,
        });
        if explicit {
            return true;
        }
        self.rules.contains(&Rule::Any)
            && !refused(ip)
            && !self.own.contains(&ip)
            && (!self.public_only || is_public(ip))
    }

    /// The check a client's URL gets when it is submitted: as [`Self::resolve`], except that a
    /// name which does not resolve now is accepted (a receiver may be unreachable from the
    /// device for a while; the delivery checks it again when it connects).
    pub async fn check_at_submit(&self, url: &str) -> Result<(), String> {
        match self.resolve(url).await {
            Err(e) if e.starts_with(UNRESOLVED) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Check `url` (absolute http(s)) and resolve its host: every address must be allowed.
    /// Returns the host and the address to connect to.
    pub async fn resolve(&self, url: &str) -> Result<(String, SocketAddr), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("'{url}' must be an http:// or https:// URL"));
        }
        let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let port = parsed.port_or_known_default().unwrap_or(80);
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)));
        let addrs: Vec<SocketAddr> = lookup
            .await
            .map_err(|_| format!("{UNRESOLVED}{host}: no answer within {} s", LOOKUP_TIMEOUT.as_secs()))?
            .map_err(|e| format!("{UNRESOLVED}{host}: {e}"))?
            .collect();
        if let Some(bad) = addrs.iter().find(|a| !self.allows(&host, a.ip())) {
            return Err(format!("{host} resolves to {}, which this device does not send requests to", bad.ip()));
        }
        let first = addrs.first().copied().ok_or_else(|| format!("{host} has no address"))?;
        Ok((host, first))
    }

    /// An HTTP client for `url` that connects only to the checked address, follows no redirect
    /// and uses no proxy.
    pub async fn client_for(&self, url: &str, timeout: std::time::Duration) -> Result<reqwest::Client, String> {
        let (host, addr) = self.resolve(url).await?;
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve(&host, addr)
            .user_agent(concat!("veil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    }
}

fn parse_rule(s: &str) -> Result<Rule, String> {
    let s = s.trim();
    if s == "*" {
        return Ok(Rule::Any);
    }
    if let Some((addr, prefix)) = s.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| format!("webhooks.allow: '{s}' is not a CIDR"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| format!("webhooks.allow: bad prefix in '{s}'"))?;
        return Ok(Rule::Net(ip, prefix));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Rule::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let valid = !s.is_empty() && s.len() <= 253 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(Rule::Host(s.to_ascii_lowercase()))
    } else {
        Err(format!("webhooks.allow: '{s}' is neither *, a CIDR, an address nor a host name"))
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix as u32) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The IPv4 addresses an IPv6 address carries by construction: IPv4-compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, and Teredo `2001::/32` (its server and, obfuscated,
/// its client).
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    let bits = u128::from(v6);
    let mut out = Vec::new();
    if bits >> 32 == 0 && bits > 1 {
        out.push(v4(s[6], s[7]));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        out.push(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        out.push(v4(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        out.push(v4(s[2], s[3]));
        out.push(v4(!s[6], !s[7]));
    }
    out
}

/// Never a destination unless listed explicitly: loopback, unspecified, link-local (the cloud
/// metadata services at 169.254.169.254 among them), multicast and broadcast, `0.0.0.0/8`, the
/// other metadata addresses (100.100.100.200, fd00:ec2::254), IPv6 site-local `fec0::/10`, and
/// IPv6 addresses carrying any of these.
fn refused(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || embedded_v4(v6).into_iter().any(|v4| refused(IpAddr::V4(v4)))
        }
    }
}

/// Globally routable: not private, shared (CGNAT), documentation, reserved or unique-local, and
/// no IPv6 form carrying such an IPv4 address.
fn is_public(ip: IpAddr) -> bool {
    if refused(ip) {
        return false;
    }
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !((s[0] & 0xfe00) == 0xfc00
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || embedded_v4(v6).into_iter().any(|v4| !is_public(IpAddr::V4(v4))))
        }
    }
}

/// The addresses of this device's own interfaces.
fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    #[cfg(unix)]
    // SAFETY: getifaddrs fills a list this function walks read-only and frees exactly once;
    // each ifa_addr is checked for null and read as the sockaddr type its family says.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) == 0 {
            let mut cur = list;
            while !cur.is_null() {
                let addr = (*cur).ifa_addr;
                if !addr.is_null() {
                    match (*addr).sa_family as i32 {
                        libc::AF_INET => {
                            let sin = &*(addr as *const libc::sockaddr_in);
                            out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
                        }
                        libc::AF_INET6 => {
                            let sin6 = &*(addr as *const libc::sockaddr_in6);
                            out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                        }
                        _ => {}
                    }
                }
                cur = (*cur).ifa_next;
            }
            libc::freeifaddrs(list);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_refuses_loopback_link_local_metadata_and_their_ipv6_disguises() {
        let p = OutboundPolicy::webhooks(&["*".into()]).unwrap();
        for bad in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "2001:0:7f00:1::",
        ] {
            assert!(!p.allows("h", ip(bad)), "{bad} allowed");
        }
        // A LAN receiver and a public one are fine for webhooks.
        for good in ["192.168.1.20", "10.0.0.5", "93.184.216.34", "2606:4700::1111"] {
            assert!(p.allows("h", ip(good)), "{good} refused");
        }
        // The device's own addresses are refused (its loopback at least).
        assert!(p.own.iter().any(|a| a.is_loopback()) || p.own.is_empty());
    }

    #[test]
    fn explicit_entries_win_and_narrow() {
        let p = OutboundPolicy::webhooks(&["127.0.0.1/32".into(), "hooks.lan".into()]).unwrap();
        assert!(p.allows("x", ip("127.0.0.1")));
        assert!(!p.allows("x", ip("93.184.216.34")), "without * nothing else is allowed");
        assert!(p.allows("HOOKS.lan", ip("10.1.1.1")));
        assert!(OutboundPolicy::webhooks(&["10.0.0.0/33".into()]).is_err());
        assert!(OutboundPolicy::webhooks(&["bad host!".into()]).is_err());
    }

    #[test]
    fn photo_urls_need_public_addresses_in_every_ipv6_form() {
        let p = OutboundPolicy::public_only();
        for bad in [
            "10.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:1::",
            "fc00::1",
            "2001:0:a00:1::",
        ] {
            assert!(!p.allows("h", ip(bad)), "{bad} allowed");
        }
        assert!(p.allows("h", ip("93.184.216.34")));
        assert!(p.allows("h", ip("2606:2800:220:1::1")));
        // Teredo with a public server and a private client (obfuscated 10.0.0.1) is refused.
        assert!(!p.allows("h", ip("2001:0:5db8:d822::f5ff:fffe")));
    }
}
