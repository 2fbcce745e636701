//! Whether each mechanism matches the client (RFC 7208 §5), and the address lookups they share.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::preflight::dns::{Dns, DnsError};
use crate::preflight::spf::SpfResult;
use crate::preflight::spf::record::{Directive, Mechanism};

use super::{Abort, Evaluator, MAX_NAMES, Role, is_queryable, is_same_or_subdomain};

impl<D: Dns> Evaluator<'_, D> {
    pub(super) async fn matches(&mut self, domain: &str, d: &Directive) -> Result<bool, Abort> {
        let term = d.text.as_str();
        match &d.mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4 { net, len } => Ok(match self.ip {
                IpAddr::V4(ip) => in_net4(ip, *net, *len),
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6 { net, len } => Ok(match self.ip {
                IpAddr::V6(ip) => in_net6(ip, *net, *len),
                IpAddr::V4(_) => false,
            }),
            Mechanism::A {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                let Some(name) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                match self.addresses(&name).await {
                    Ok(addrs) => Ok(addrs.iter().any(|a| self.in_net(*a, *cidr4, *cidr6))),
                    Err(e) if e.is_void() => self.void(term).map(|()| false),
                    Err(e) => Err(Abort::Temp(format!(
                        "\"{term}\": lookup of {name} failed: {e}"
                    ))),
                }
            }
            Mechanism::Mx {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                let Some(name) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                let mut exchanges = match self.dns.mx(&name).await {
                    Ok(mx) => mx,
                    Err(e) if e.is_void() => return self.void(term).map(|()| false),
                    Err(e) => {
                        return Err(Abort::Temp(format!(
                            "\"{term}\": MX lookup of {name} failed: {e}"
                        )));
                    }
                };
                exchanges.sort_by_key(|(preference, _)| *preference);
                for (i, (_, exchange)) in exchanges.iter().enumerate() {
                    if i >= MAX_NAMES {
                        return Err(Abort::Perm(format!(
                            "\"{term}\": {name} has more than {MAX_NAMES} MX records (RFC 7208 §4.6.4)"
                        )));
                    }
                    if !is_queryable(exchange) {
                        continue;
                    }
                    match self.addresses(exchange).await {
                        Ok(addrs) if addrs.iter().any(|a| self.in_net(*a, *cidr4, *cidr6)) => {
                            return Ok(true);
                        }
                        Ok(_) => {}
                        Err(e) if e.is_void() => {}
                        Err(e) => {
                            return Err(Abort::Temp(format!(
                                "\"{term}\": lookup of {exchange} failed: {e}"
                            )));
                        }
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                let Some(target) = self.target(spec.as_ref(), domain).await else {
                    return Ok(false);
                };
                let names = match self.dns.ptr(self.ip).await {
                    Ok(names) => names,
                    Err(e) if e.is_void() => return self.void(term).map(|()| false),
                    // §5.5: a DNS error in the PTR lookup makes the mechanism fail to match.
                    Err(_) => return Ok(false),
                };
                for name in names.iter().take(MAX_NAMES) {
                    if is_same_or_subdomain(name, &target) && self.validates(name).await {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Exists(spec) => {
                let Some(name) = self.target(Some(spec), domain).await else {
                    return Ok(false);
                };
                // §5.7: always an A query, whatever the client's address family.
                match self.dns.a(&name).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_void() => self.void(term).map(|()| false),
                    Err(e) => Err(Abort::Temp(format!(
                        "\"{term}\": lookup of {name} failed: {e}"
                    ))),
                }
            }
            Mechanism::Include(spec) => {
                let target = self.expand(spec, domain).await;
                let v = self.check(target.clone(), Role::Include).await;
                match v.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Abort::Temp(v.explanation)),
                    SpfResult::PermError => Err(Abort::Perm(v.explanation)),
                    SpfResult::None => Err(Abort::Perm(format!(
                        "\"{term}\" of {domain}: {} (an include must find a record)",
                        v.explanation
                    ))),
                }
            }
        }
    }

    /// Whether `name` resolves back to the client (A for IPv4 clients, AAAA for IPv6).
    pub(super) async fn validates(&self, name: &str) -> bool {
        is_queryable(name)
            && self
                .addresses(name)
                .await
                .is_ok_and(|addrs| addrs.contains(&self.ip))
    }

    /// A or AAAA records of `name`, whichever family the client uses.
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        match self.ip {
            IpAddr::V4(_) => Ok(self
                .dns
                .a(name)
                .await?
                .into_iter()
                .map(IpAddr::V4)
                .collect()),
            IpAddr::V6(_) => Ok(self
                .dns
                .aaaa(name)
                .await?
                .into_iter()
                .map(IpAddr::V6)
                .collect()),
        }
    }

    fn in_net(&self, addr: IpAddr, cidr4: u8, cidr6: u8) -> bool {
        match (self.ip, addr) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => in_net4(ip, net, cidr4),
            (IpAddr::V6(ip), IpAddr::V6(net)) => in_net6(ip, net, cidr6),
            _ => false,
        }
    }
}

fn in_net4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_net6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip: Ipv4Addr = "192.0.2.129".parse().unwrap();
        assert!(in_net4(ip, "192.0.2.128".parse().unwrap(), 28));
        assert!(!in_net4(ip, "192.0.2.0".parse().unwrap(), 25));
        assert!(in_net4(ip, "1.1.1.1".parse().unwrap(), 0));
        let ip6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(in_net6(ip6, "2001:db8::".parse().unwrap(), 32));
        assert!(!in_net6(ip6, "2001:db9::".parse().unwrap(), 32));
        assert!(in_net6(ip6, "::".parse().unwrap(), 0));
        assert!(in_net6(ip6, ip6, 128));
    }
}
