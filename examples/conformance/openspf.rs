//! The OpenSPF test-suite format (pyspf's `rfc4408-tests.yml` and `test.yml`): YAML documents,
//! each a scenario with `zonedata` (name → list of `{TYPE: value}` or `TIMEOUT`) and `tests`
//! (`helo`, `host`, `mailfrom`, `result` as a word or a list of acceptable words, optional
//! `explanation`).
//!
//! Zone conventions of the suite drivers, kept here: an `SPF` (type 99) record at a name that
//! has no `TXT` entry is also served as TXT, after the name's other entries ("auto-magic
//! duplication", rfc4408-tests.yml header); `TXT: NONE` means "no TXT here, and none generated";
//! type 99 itself is never served (RFC 7208 §3.1 removed it). Double-quoted YAML escapes such as
//! `"\xEF"` stand for bytes, so strings are served byte for byte (Latin-1).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use hearth::preflight::spf::SpfResult;
use yaml_rust2::{Yaml, YamlLoader};

use crate::dns_server::{Rec, Zone};
use crate::spf::{Case, Identity, Suite};

/// Cases whose expected result is not RFC 7208's. They run, and are reported as skipped with
/// the reason. Keyed by suite and test name.
const DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "spf-rfc4408",
        "v-macro-ip6",
        "the suite expects upper-case hex nibbles from %{ir}; RFC 7208 §7.4 writes them in lower \
         case (\"1.0.b.c.…\"), as Hearth does; the result, fail, agrees",
    ),
    (
        "spf-pyspf",
        "default-modifier",
        "pyspf's lax mode (strict: 0) honours the obsolete default= modifier; RFC 7208 §6 \
         ignores unknown modifiers, so the result is neutral",
    ),
    (
        "spf-pyspf",
        "default-modifier-harsh",
        "\"ambiguous\" is pyspf's harsh-mode verdict (strict: 2), not an RFC 7208 result; RFC \
         7208 §6 ignores the default= modifier, so the result is neutral",
    ),
];

pub fn load(dir: &Path, file: &str, suite: &'static str) -> Result<Option<Suite>, String> {
    let path = dir.join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let docs = YamlLoader::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Suite {
        name: suite,
        zones: Vec::new(),
        cases: Vec::new(),
    };
    for (n, doc) in docs.iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let scenario = scalar(&doc["description"])
            .or_else(|| scalar(&doc["comment"]))
            .map(|s| s.lines().next().unwrap_or_default().trim().to_owned())
            .unwrap_or_else(|| format!("document {}", n + 1));
        let zone = zone(&doc["zonedata"]).map_err(|e| format!("{scenario}: {e}"))?;
        out.zones.push(Arc::new(zone));
        let zone_index = out.zones.len() - 1;
        let Some(tests) = doc["tests"].as_hash() else {
            return Err(format!("{scenario}: no tests"));
        };
        for (name, test) in tests {
            let name = scalar(name).unwrap_or_default();
            let expect = match &test["result"] {
                Yaml::Array(words) => words.iter().filter_map(scalar).collect::<Vec<_>>(),
                other => scalar(other).into_iter().collect(),
            };
            // Words that are not RFC results (pyspf's "ambiguous") leave the list empty; such
            // a case can only be a documented deviation.
            let expect: Vec<SpfResult> = expect.iter().filter_map(|w| w.parse().ok()).collect();
            let host = scalar(&test["host"]).unwrap_or_default();
            let deviation = DEVIATIONS
                .iter()
                .find(|(s, t, _)| *s == suite && *t == name)
                .map(|(_, _, why)| *why);
            out.cases.push(Case {
                id: format!("{scenario}/{name}"),
                zone: zone_index,
                ip: host
                    .parse::<IpAddr>()
                    .map_err(|_| format!("bad host {host:?}")),
                helo: scalar(&test["helo"]).unwrap_or_default(),
                mail_from: scalar(&test["mailfrom"]).unwrap_or_default(),
                identity: Identity::MailFrom,
                expect,
                explanation: scalar(&test["explanation"]),
                deviation,
            });
        }
    }
    Ok(Some(out))
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A YAML string as the bytes the suite means: each character up to U+00FF is one byte.
fn bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out
}

/// One TXT/SPF value: a string, or a list of character-strings.
fn strings(y: &Yaml) -> Result<Vec<Vec<u8>>, String> {
    match y {
        Yaml::Array(parts) => parts
            .iter()
            .map(|p| {
                scalar(p)
                    .map(|s| bytes(&s))
                    .ok_or_else(|| format!("bad TXT part {p:?}"))
            })
            .collect(),
        other => scalar(other)
            .map(|s| vec![bytes(&s)])
            .ok_or_else(|| format!("bad TXT value {other:?}")),
    }
}

fn zone(data: &Yaml) -> Result<Zone, String> {
    let mut zone = Zone::new();
    let Some(names) = data.as_hash() else {
        return Ok(zone);
    };
    for (name, entries) in names {
        let name = scalar(name).ok_or("bad name")?;
        zone.touch(&name);
        let entries = entries
            .as_vec()
            .ok_or_else(|| format!("{name}: records are not a list"))?;
        let has_txt = entries.iter().any(|e| !e["TXT"].is_badvalue());
        let mut generated = Vec::new();
        for entry in entries {
            if scalar(entry).as_deref() == Some("TIMEOUT") {
                zone.add(&name, Rec::Timeout);
                continue;
            }
            let Some(hash) = entry.as_hash() else {
                return Err(format!("{name}: unknown entry {entry:?}"));
            };
            for (rtype, value) in hash {
                let rtype = scalar(rtype).unwrap_or_default();
                let text = scalar(value);
                let bad = || format!("{name}: bad {rtype} value {value:?}");
                match rtype.as_str() {
                    "A" => zone.add(
                        &name,
                        Rec::A(text.ok_or_else(bad)?.parse().map_err(|_| bad())?),
                    ),
                    "AAAA" => zone.add(
                        &name,
                        Rec::Aaaa(text.ok_or_else(bad)?.parse().map_err(|_| bad())?),
                    ),
                    "PTR" => zone.add(&name, Rec::Ptr(text.ok_or_else(bad)?)),
                    "CNAME" => zone.add(&name, Rec::Cname(text.ok_or_else(bad)?)),
                    "MX" => {
                        let pair = value.as_vec().filter(|v| v.len() == 2).ok_or_else(bad)?;
                        let preference = pair[0]
                            .as_i64()
                            .and_then(|p| u16::try_from(p).ok())
                            .ok_or_else(bad)?;
                        zone.add(
                            &name,
                            Rec::Mx(preference, scalar(&pair[1]).ok_or_else(bad)?),
                        );
                    }
                    "TXT" if text.as_deref() == Some("NONE") => {}
                    "TXT" => zone.add(&name, Rec::Txt(strings(value)?)),
                    "SPF" if text.as_deref() == Some("NONE") => {}
                    "SPF" if !has_txt => generated.push(Rec::Txt(strings(value)?)),
                    "SPF" => {}
                    other => return Err(format!("{name}: unknown record type {other}")),
                }
            }
        }
        for rec in generated {
            zone.add(&name, rec);
        }
    }
    Ok(zone)
}
