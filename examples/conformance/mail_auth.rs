//! mail-auth's SPF cases (`mail-auth-spf/*.yml`). Not the OpenSPF format and not quite YAML
//! (keys repeat): mail-auth's own test reads them line by line, and so does this loader, with
//! the same meaning:
//!
//! - `spf: NAME RECORD` and `exp: NAME TEXT` set the TXT record of NAME; `a:`/`aaaa: NAME IP, IP…`
//!   its addresses; `ptr: IP NAME, NAME…` the PTR names of IP; `mx: NAME IP, IP…` gives NAME one
//!   MX per address, named `mx.IP.N` with preference N+1, each resolving to its address. A later
//!   line replaces the earlier records of that name and type; records persist through the file.
//! - `domain:` is the HELO name, `sender:` the MAIL FROM (reset by `---`), `ip:` the client;
//!   each `expect: RESULT [EXPLANATION]` checks the records as they are at that line.
//! - Names with a `_dns_error` label answer SERVFAIL.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use hearth::preflight::spf::SpfResult;
use hickory_proto::rr::RecordType;

use crate::dns_server::{Rec, Zone};
use crate::spf::{Case, Identity, Suite};

/// Cases whose expected result is not RFC 7208's, keyed by `file:scenario#n`. They run, and are
/// reported as skipped with the reason.
const DEVIATIONS: &[(&str, &str)] = &[
    (
        "all:All test#1",
        "RFC 7208 §4.6: a syntax error anywhere in the record (the unknown mechanism \"ip:\") is \
         a permerror, even after \"all\"; mail-auth expects fail",
    ),
    (
        "basic:DNS Lookup Limits#1",
        "RFC 7208 §4.6.4 void-lookup limit: the third a: term naming a domain that does not \
         exist is a permerror; mail-auth has no void limit and expects softfail",
    ),
    (
        "exists:Exists#2",
        "RFC 7208 §5.7: exists queries A records only, whatever the client; this name has only AAAA \
         records, so it does not match (fail); mail-auth also accepts AAAA and expects pass",
    ),
    (
        "ip:IPv6 match#4",
        "RFC 7208 §5: IPv4 addresses are listed only with ip4, so an IPv4 client does not match \
         ip6:::ffff:10.1.2.3 (fail); mail-auth expects pass (the OpenSPF suite accepts either)",
    ),
    (
        "macro:Macro expansion 2#2",
        "RFC 7208 §5.7: exists always queries A; the name built from the IPv6 client has only an \
         AAAA record, so nothing matches (fail); mail-auth also accepts AAAA and expects pass",
    ),
];

pub fn load(dir: &Path, sub: &str, suite: &'static str) -> Result<Option<Suite>, String> {
    let dir = dir.join(sub);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut out = Suite {
        name: suite,
        zones: Vec::new(),
        cases: Vec::new(),
    };
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        load_file(&file, &text, &mut out).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Some(out))
}

fn load_file(file: &str, text: &str, out: &mut Suite) -> Result<(), String> {
    let mut zone = Zone::new();
    zone.servfail_label("_dns_error");
    // The zone as of the last `expect:`, shared by the cases that see it unchanged.
    let mut snapshot: Option<usize> = None;
    for doc in text.split("---\n") {
        let (mut name, mut helo, mut sender, mut ip) =
            (String::new(), String::new(), String::new(), None);
        let mut number = 0;
        for line in doc.lines() {
            let line = line.trim();
            let line = line.strip_prefix('-').map_or(line, str::trim);
            let split = |rest: &str| -> Result<(String, String), String> {
                let rest = rest.trim();
                rest.split_once(' ')
                    .map(|(a, b)| (a.trim().to_owned(), b.to_owned()))
                    .ok_or_else(|| format!("bad line {line:?}"))
            };
            if let Some(v) = line.strip_prefix("name:") {
                name = v.trim().to_owned();
            } else if let Some(v) = line
                .strip_prefix("spf:")
                .or_else(|| line.strip_prefix("exp:"))
            {
                let (n, txt) = split(v)?;
                zone.replace(&n, RecordType::TXT, vec![Rec::Txt(vec![txt.into_bytes()])]);
                snapshot = None;
            } else if let Some(v) = line.strip_prefix("a:") {
                let (n, ips) = split(v)?;
                let recs = addresses(&ips)?.into_iter().map(address).collect();
                zone.replace(&n, RecordType::A, recs);
                snapshot = None;
            } else if let Some(v) = line.strip_prefix("aaaa:") {
                let (n, ips) = split(v)?;
                let recs = addresses(&ips)?.into_iter().map(address).collect();
                zone.replace(&n, RecordType::AAAA, recs);
                snapshot = None;
            } else if let Some(v) = line.strip_prefix("ptr:") {
                let (ip, names) = split(v)?;
                let ip: IpAddr = ip.parse().map_err(|_| format!("bad address in {line:?}"))?;
                let recs = names
                    .split(',')
                    .map(|n| Rec::Ptr(n.trim().to_owned()))
                    .collect();
                zone.replace(
                    &hearth::preflight::dns::reverse_name(ip),
                    RecordType::PTR,
                    recs,
                );
                snapshot = None;
            } else if let Some(v) = line.strip_prefix("mx:") {
                let (n, ips) = split(v)?;
                let mut recs = Vec::new();
                for (pos, ip) in addresses(&ips)?.into_iter().enumerate() {
                    let exchange = format!("mx.{ip}.{pos}");
                    let rtype = if ip.is_ipv4() {
                        RecordType::A
                    } else {
                        RecordType::AAAA
                    };
                    zone.replace(&exchange, rtype, vec![address(ip)]);
                    recs.push(Rec::Mx(
                        u16::try_from(pos + 1).unwrap_or(u16::MAX),
                        exchange,
                    ));
                }
                zone.replace(&n, RecordType::MX, recs);
                snapshot = None;
            } else if let Some(v) = line.strip_prefix("domain:") {
                helo = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("sender:") {
                sender = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("ip:") {
                ip = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("expect:") {
                number += 1;
                let v = v.trim();
                let (word, explanation) = match v.split_once(' ') {
                    Some((w, e)) => (w, Some(e.trim().to_owned())),
                    None => (v, None),
                };
                let result: SpfResult = word.parse()?;
                let zone_index = *snapshot.get_or_insert_with(|| {
                    out.zones.push(Arc::new(zone.clone()));
                    out.zones.len() - 1
                });
                let id = format!("{file}:{name}#{number}");
                let deviation = DEVIATIONS
                    .iter()
                    .find(|(k, _)| *k == id)
                    .map(|(_, why)| *why);
                let ip = ip.clone().unwrap_or_default();
                out.cases.push(Case {
                    id,
                    zone: zone_index,
                    ip: ip.parse().map_err(|_| format!("bad ip {ip:?}")),
                    helo: helo.clone(),
                    mail_from: sender.clone(),
                    identity: Identity::HeloThenMailFrom,
                    expect: vec![result],
                    explanation,
                    deviation,
                });
            }
        }
    }
    Ok(())
}

fn addresses(list: &str) -> Result<Vec<IpAddr>, String> {
    list.split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("bad address {s:?}")))
        .collect()
}

fn address(ip: IpAddr) -> Rec {
    match ip {
        IpAddr::V4(v4) => Rec::A(v4),
        IpAddr::V6(v6) => Rec::Aaaa(v6),
    }
}
