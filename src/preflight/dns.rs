//! The DNS layer of preflight: the few lookups Hearth needs, behind a small trait so checks can
//! run against the real resolver in integration tests and against in-memory zones in unit tests.
//!
//! [`DnsClient`] is hickory's resolver configured for checking, not for browsing: no cache (a
//! re-check must see a fixed zone at once), no hosts file, no search list (every name is queried
//! as fully qualified), the configured nameservers over UDP and TCP or the system's when none are
//! configured. Names are built label by label from raw bytes, so names that are not host names
//! (`_spf`, `foo:bar/baz.example.com`, names with spaces from SPF macros) are queried as given.
//!
//! Known limitation: hickory applies the RFC 6761 special-use rules before asking any server.
//! `localhost.` A/AAAA, and PTR lookups of 127.0.0.0/8 and `::1`, are answered locally
//! (`localhost`), and `.invalid`/`.onion` names get NXDOMAIN. Use documentation addresses
//! (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) in tests that need PTR records.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{TokioResolver, lookup::Lookup};

use crate::config::DnsConfig;

/// Why a lookup returned no records. Void answers (`NxDomain`, `NoData`) are facts about the
/// zone; the others mean we could not find out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("the name does not exist (NXDOMAIN)")]
    NxDomain,
    #[error("the name has no records of that type")]
    NoData,
    #[error("the DNS server did not answer in time")]
    Timeout,
    #[error("the DNS server failed to answer ({0})")]
    ServFail(String),
    #[error("the DNS lookup failed: {0}")]
    Other(String),
}

impl DnsError {
    /// An authoritative "nothing here": NXDOMAIN or an empty answer.
    pub fn is_void(&self) -> bool {
        matches!(self, Self::NxDomain | Self::NoData)
    }

    /// We could not tell: ask again later; never a reason to judge an identity broken.
    pub fn is_temporary(&self) -> bool {
        !self.is_void()
    }
}

/// Lookups Hearth needs; implemented by the real client and by in-memory zones in unit tests.
///
/// Names may be given with or without the trailing dot; they are always queried as fully
/// qualified. An answer that contains no record of the asked type is `Err(NoData)`, never an
/// empty `Ok`.
pub trait Dns: Send + Sync {
    /// One `String` per TXT record, its character-strings concatenated (lossy UTF-8).
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, DnsError>> + Send;
    fn a(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv4Addr>, DnsError>> + Send;
    fn aaaa(&self, name: &str) -> impl Future<Output = Result<Vec<Ipv6Addr>, DnsError>> + Send;
    /// `(preference, exchange)`, the exchange lower-case without the trailing dot (a null MX
    /// `.` gives an empty exchange).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<(u16, String)>, DnsError>> + Send;
    /// The PTR names of `ip`, lower-case, without the trailing dot.
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Result<Vec<String>, DnsError>> + Send;
}

/// The real resolver. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct DnsClient {
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsClient").finish_non_exhaustive()
    }
}

impl DnsClient {
    /// A resolver for `cfg`: its nameservers (UDP and TCP, any port), or the system's
    /// (`/etc/resolv.conf`) when the list is empty. Must be called inside a tokio runtime.
    pub fn new(cfg: &DnsConfig) -> Result<Self, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if cfg.nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| {
                DnsError::Other(format!("cannot read the system's DNS configuration: {e}"))
            })?
        } else {
            let servers = cfg
                .nameservers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    server.trust_negative_responses = true;
                    for conn in &mut server.connections {
                        conn.port = addr.port();
                    }
                    server
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let opts = builder.options_mut();
        opts.timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        // hickory counts retries; the config counts tries.
        opts.attempts = cfg.attempts.saturating_sub(1) as usize;
        opts.cache_size = 0;
        opts.ndots = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = builder
            .build()
            .map_err(|e| DnsError::Other(format!("cannot build the resolver: {e}")))?;
        Ok(Self { resolver })
    }

    async fn lookup(&self, name: Name, rtype: RecordType) -> Result<Lookup, DnsError> {
        self.resolver.lookup(name, rtype).await.map_err(classify)
    }

    /// The records of one type in an answer; CNAMEs and other types met on the way are skipped.
    async fn collect<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Result<Vec<T>, DnsError> {
        let lookup = self.lookup(query_name(name)?, rtype).await?;
        let found: Vec<T> = lookup
            .answers()
            .iter()
            .filter_map(|r| pick(&r.data))
            .collect();
        if found.is_empty() {
            Err(DnsError::NoData)
        } else {
            Ok(found)
        }
    }
}

impl Dns for DnsClient {
    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        self.collect(name, RecordType::TXT, |d| match d {
            RData::TXT(t) => Some(String::from_utf8_lossy(&t.txt_data.concat()).into_owned()),
            _ => None,
        })
        .await
    }

    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        self.collect(name, RecordType::A, |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .await
    }

    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        self.collect(name, RecordType::AAAA, |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .await
    }

    async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, DnsError> {
        self.collect(name, RecordType::MX, |d| match d {
            RData::MX(mx) => Some((mx.preference, name_to_string(&mx.exchange))),
            _ => None,
        })
        .await
    }

    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        self.collect(&reverse_name(ip), RecordType::PTR, |d| match d {
            RData::PTR(p) => Some(name_to_string(&p.0)),
            _ => None,
        })
        .await
    }
}

/// Maps hickory's errors onto ours: NXDOMAIN and NOERROR-without-answer are void, every other
/// response code (SERVFAIL, REFUSED, …) is `ServFail`, and timeouts are `Timeout`.
fn classify(e: NetError) -> DnsError {
    if e.is_nx_domain() {
        return DnsError::NxDomain;
    }
    if e.is_no_records_found() {
        return DnsError::NoData;
    }
    match e {
        NetError::Timeout => DnsError::Timeout,
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => DnsError::ServFail(code.to_string()),
        other => DnsError::Other(other.to_string()),
    }
}

/// The fully qualified query name for `name`, one raw label per dot-separated part, so any
/// printable bytes survive (hickory's string parsers would apply IDNA and host-name rules).
fn query_name(name: &str) -> Result<Name, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(DnsError::Other("empty domain name".into()));
    }
    Name::from_labels(name.split('.').map(str::as_bytes))
        .map_err(|e| DnsError::Other(format!("invalid domain name {name:?}: {e}")))
}

/// Lower-case text of a name, without the trailing dot; the root is the empty string.
fn name_to_string(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

/// `4.3.2.1.in-addr.arpa` / the 32-nibble `ip6.arpa` name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

/// An in-memory zone for unit tests of code that takes a [`Dns`].
#[cfg(test)]
pub mod testing {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Mutex;

    use super::{Dns, DnsError, reverse_name};

    /// Records by (lower-case name, type). A name that has any record answers `NoData` for
    /// the other types; an unknown name answers `NxDomain`. `fail(name, error)` makes every
    /// lookup of that name fail. Every query is logged, so tests can count lookups.
    #[derive(Default)]
    pub struct MemoryDns {
        txt: HashMap<String, Vec<String>>,
        a: HashMap<String, Vec<Ipv4Addr>>,
        aaaa: HashMap<String, Vec<Ipv6Addr>>,
        mx: HashMap<String, Vec<(u16, String)>>,
        ptr: HashMap<String, Vec<String>>,
        errors: HashMap<String, DnsError>,
        pub queries: Mutex<Vec<String>>,
    }

    fn key(name: &str) -> String {
        name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
    }

    impl MemoryDns {
        pub fn new() -> Self {
            Self::default()
        }

        pub fn txt(mut self, name: &str, value: &str) -> Self {
            self.txt.entry(key(name)).or_default().push(value.into());
            self
        }

        pub fn a(mut self, name: &str, ip: &str) -> Self {
            self.a
                .entry(key(name))
                .or_default()
                .push(ip.parse().expect("IPv4 address"));
            self
        }

        pub fn aaaa(mut self, name: &str, ip: &str) -> Self {
            self.aaaa
                .entry(key(name))
                .or_default()
                .push(ip.parse().expect("IPv6 address"));
            self
        }

        pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
            self.mx
                .entry(key(name))
                .or_default()
                .push((preference, key(exchange)));
            self
        }

        pub fn ptr(mut self, ip: &str, target: &str) -> Self {
            let ip: IpAddr = ip.parse().expect("IP address");
            self.ptr
                .entry(reverse_name(ip))
                .or_default()
                .push(key(target));
            self
        }

        pub fn fail(mut self, name: &str, error: DnsError) -> Self {
            self.errors.insert(key(name), error);
            self
        }

        fn exists(&self, k: &str) -> bool {
            self.txt.contains_key(k)
                || self.a.contains_key(k)
                || self.aaaa.contains_key(k)
                || self.mx.contains_key(k)
                || self.ptr.contains_key(k)
        }

        fn get<T: Clone>(
            &self,
            map: &HashMap<String, Vec<T>>,
            rtype: &str,
            name: &str,
        ) -> Result<Vec<T>, DnsError> {
            let k = key(name);
            self.queries
                .lock()
                .expect("query log")
                .push(format!("{rtype} {k}"));
            if let Some(e) = self.errors.get(&k) {
                return Err(e.clone());
            }
            match map.get(&k) {
                Some(v) if !v.is_empty() => Ok(v.clone()),
                _ if self.exists(&k) => Err(DnsError::NoData),
                _ => Err(DnsError::NxDomain),
            }
        }

        /// How many queries have been made so far.
        pub fn query_count(&self) -> usize {
            self.queries.lock().expect("query log").len()
        }
    }

    impl Dns for MemoryDns {
        async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
            self.get(&self.txt, "TXT", name)
        }
        async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
            self.get(&self.a, "A", name)
        }
        async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
            self.get(&self.aaaa, "AAAA", name)
        }
        async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, DnsError> {
            self.get(&self.mx, "MX", name)
        }
        async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
            self.get(&self.ptr, "PTR", &reverse_name(ip))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.10".parse().unwrap()),
            "10.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::cb01".parse().unwrap()),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn query_names_keep_unusual_bytes() {
        let name = query_name("foo:bar/baz.Example.com.").unwrap();
        assert!(name.is_fqdn());
        assert_eq!(name.num_labels(), 3);
        assert_eq!(name_to_string(&name), "foo:bar/baz.example.com");
        assert!(query_name("").is_err());
        assert!(query_name("a..b").is_err());
    }

    #[test]
    fn error_classes() {
        assert!(DnsError::NxDomain.is_void() && !DnsError::NxDomain.is_temporary());
        assert!(DnsError::NoData.is_void());
        for e in [
            DnsError::Timeout,
            DnsError::ServFail("SERVFAIL".into()),
            DnsError::Other("x".into()),
        ] {
            assert!(e.is_temporary() && !e.is_void(), "{e}");
        }
    }
}

/// The conformance run's zone server, to test [`DnsClient`] against real DNS messages.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../examples/conformance/dns_server.rs"]
mod test_server;

#[cfg(test)]
mod client_tests {
    use std::sync::Arc;

    use super::test_server::{Rec, Zone, ZoneServer};
    use super::*;

    async fn client(zone: Zone) -> (ZoneServer, DnsClient) {
        let server = ZoneServer::start(Arc::new(zone))
            .await
            .expect("zone server");
        let cfg = DnsConfig {
            nameservers: vec![server.addr()],
            timeout_ms: 1000,
            attempts: 1,
        };
        (server, DnsClient::new(&cfg).expect("client"))
    }

    #[tokio::test]
    async fn answers_and_errors_are_classified() {
        let mut zone = Zone::new();
        zone.add(
            "example.org",
            Rec::Txt(vec![b"v=spf1 ".to_vec(), b"-all".to_vec()]),
        );
        zone.add("example.org", Rec::Txt(vec![b"hello".to_vec()]));
        zone.add("example.org", Rec::Mx(10, "MX1.Example.org.".into()));
        zone.add("example.org", Rec::Mx(0, "".into()));
        zone.add("mx1.example.org", Rec::A("192.0.2.1".parse().unwrap()));
        zone.add("mx1.example.org", Rec::Aaaa("2001:db8::1".parse().unwrap()));
        zone.add("alias.example.org", Rec::Cname("mx1.example.org".into()));
        zone.add("2.0.192.in-addr.arpa", Rec::Ptr("x".into()));
        zone.add(
            "1.2.0.192.in-addr.arpa",
            Rec::Ptr("Host.Example.org.".into()),
        );
        zone.add(
            "foo:bar/baz.example.org",
            Rec::A("192.0.2.9".parse().unwrap()),
        );
        zone.add("slow.example.org", Rec::Timeout);
        zone.add("broken.example.org", Rec::ServFail);
        let (_server, dns) = client(zone).await;

        let mut txt = dns.txt("example.org").await.unwrap();
        txt.sort();
        assert_eq!(txt, vec!["hello", "v=spf1 -all"]);
        let mut mx = dns.mx("example.org.").await.unwrap();
        mx.sort();
        assert_eq!(mx, vec![(0, String::new()), (10, "mx1.example.org".into())]);
        assert_eq!(
            dns.a("alias.example.org").await,
            Ok(vec!["192.0.2.1".parse().unwrap()])
        );
        assert_eq!(
            dns.aaaa("mx1.example.org").await,
            Ok(vec!["2001:db8::1".parse().unwrap()])
        );
        assert_eq!(
            dns.ptr("192.0.2.1".parse().unwrap()).await,
            Ok(vec!["host.example.org".into()])
        );
        assert_eq!(
            dns.a("foo:bar/baz.example.org").await,
            Ok(vec!["192.0.2.9".parse().unwrap()])
        );

        assert_eq!(dns.a("example.org").await, Err(DnsError::NoData));
        assert_eq!(
            dns.txt("missing.example.org").await,
            Err(DnsError::NxDomain)
        );
        assert_eq!(
            dns.ptr("192.0.2.2".parse().unwrap()).await,
            Err(DnsError::NxDomain)
        );
        assert!(matches!(
            dns.txt("broken.example.org").await,
            Err(DnsError::ServFail(_))
        ));
        assert_eq!(dns.txt("slow.example.org").await, Err(DnsError::Timeout));
    }

    #[tokio::test]
    async fn large_answers_fall_back_to_tcp() {
        let mut zone = Zone::new();
        for i in 0..40 {
            zone.add(
                "big.example.org",
                Rec::Txt(vec![
                    format!("record number {i} with some padding text").into_bytes(),
                ]),
            );
        }
        let (_server, dns) = client(zone).await;
        assert_eq!(dns.txt("big.example.org").await.map(|t| t.len()), Ok(40));
    }
}
