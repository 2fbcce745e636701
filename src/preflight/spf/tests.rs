//! Table-driven check_host() tests against an in-memory zone.

use std::net::IpAddr;

use super::*;
use crate::preflight::dns::DnsError;
use crate::preflight::dns::testing::MemoryDns;

/// One zone for most cases: `example.org` and its neighbours, documentation addresses only.
fn zone() -> MemoryDns {
    MemoryDns::new()
        // Plain mechanisms.
        .txt(
            "ip.example.org",
            "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8:1::/48 -all",
        )
        .txt(
            "a.example.org",
            "v=spf1 a a:host.example.org/30 a:v6.example.org//64 -all",
        )
        .a("a.example.org", "198.51.100.1")
        .a("host.example.org", "203.0.113.9")
        .aaaa("v6.example.org", "2001:db8:6::1")
        .txt("mx.example.org", "v=spf1 mx ~all")
        .mx("mx.example.org", 20, "mx2.example.org")
        .mx("mx.example.org", 10, "mx1.example.org")
        .a("mx1.example.org", "192.0.2.201")
        .a("mx2.example.org", "192.0.2.202")
        .aaaa("mx2.example.org", "2001:db8::202")
        .txt("nullmx.example.org", "v=spf1 mx ?all")
        .mx("nullmx.example.org", 0, ".")
        .txt(
            "exists.example.org",
            "v=spf1 exists:%{ir}.%{l1r+}.allow.example.org -all",
        )
        .a("10.2.0.192.alice.allow.example.org", "127.0.0.2")
        .txt("ptr.example.org", "v=spf1 ptr -all")
        .ptr("192.0.2.33", "out.ptr.example.org")
        .ptr("192.0.2.33", "other.example.net")
        .a("out.ptr.example.org", "192.0.2.33")
        .ptr("192.0.2.34", "liar.ptr.example.org")
        .a("liar.ptr.example.org", "192.0.2.99")
        // Include and redirect.
        .txt(
            "inc.example.org",
            "v=spf1 include:ip.example.org include:soft.example.org ?all",
        )
        .txt("soft.example.org", "v=spf1 ip4:198.51.100.0/24 ~all")
        .txt(
            "incnone.example.org",
            "v=spf1 include:nothing.example.org -all",
        )
        .txt(
            "inctemp.example.org",
            "v=spf1 include:slow.example.org -all",
        )
        .fail("slow.example.org", DnsError::Timeout)
        .txt(
            "redir.example.org",
            "v=spf1 ip4:203.0.113.1 redirect=ip.example.org",
        )
        .txt(
            "redirall.example.org",
            "v=spf1 ?all redirect=ip.example.org",
        )
        .txt(
            "redirnone.example.org",
            "v=spf1 redirect=nothing.example.org",
        )
        // Record selection and syntax.
        .txt("two.example.org", "v=spf1 -all")
        .txt("two.example.org", "v=spf1 +all")
        .txt("other.example.org", "google-site-verification=abc")
        .txt("other.example.org", "v=spf10 +all")
        .txt("bad.example.org", "v=spf1 ip4:192.0.2.1 -all exists")
        .txt("empty.example.org", "v=spf1")
        .txt("unknownmod.example.org", "v=spf1 foo=bar%{d} -all")
        .txt("servfail.example.org", "v=spf1 a:broken.example.org -all")
        .fail("broken.example.org", DnsError::ServFail("SERVFAIL".into()))
        // Explanations.
        .txt("exp.example.org", "v=spf1 -all exp=why.example.org")
        .txt(
            "why.example.org",
            "%{i} may not send for %{d} (%{s}, %{c}, %{v})",
        )
        .txt("badexp.example.org", "v=spf1 -all exp=twice.example.org")
        .txt("twice.example.org", "one")
        .txt("twice.example.org", "two")
        .txt(
            "incexp.example.org",
            "v=spf1 include:exp.example.org -all exp=mine.example.org",
        )
        .txt("mine.example.org", "the including domain explains")
        // Limits.
        .txt(
            "void.example.org",
            "v=spf1 a:n1.example.org a:n2.example.org a:n3.example.org ip4:192.0.2.10 -all",
        )
        .txt(
            "twovoid.example.org",
            "v=spf1 a:n1.example.org a:n2.example.org ip4:192.0.2.10 -all",
        )
        .txt(
            "ten.example.org",
            &format!(
                "v=spf1 {}ip4:192.0.2.10 -all",
                "a:host.example.org ".repeat(10)
            ),
        )
        .txt(
            "eleven.example.org",
            &format!(
                "v=spf1 {}ip4:192.0.2.10 -all",
                "a:host.example.org ".repeat(11)
            ),
        )
        .txt("loop.example.org", "v=spf1 include:loop.example.org -all")
        .txt("manymx.example.org", "v=spf1 mx -all")
        .mx("manymx.example.org", 1, "m1.example.org")
        .mx("manymx.example.org", 2, "m2.example.org")
        .mx("manymx.example.org", 3, "m3.example.org")
        .mx("manymx.example.org", 4, "m4.example.org")
        .mx("manymx.example.org", 5, "m5.example.org")
        .mx("manymx.example.org", 6, "m6.example.org")
        .mx("manymx.example.org", 7, "m7.example.org")
        .mx("manymx.example.org", 8, "m8.example.org")
        .mx("manymx.example.org", 9, "m9.example.org")
        .mx("manymx.example.org", 10, "m10.example.org")
        .mx("manymx.example.org", 11, "m11.example.org")
        .a("m3.example.org", "192.0.2.3")
        .a("m11.example.org", "192.0.2.11")
        // %{p} and %{h}.
        .txt(
            "pmacro.example.org",
            "v=spf1 exists:%{p}.ok.example.org -all",
        )
        .a("out.ptr.example.org.ok.example.org", "127.0.0.2")
        .txt("helo.example.org", "v=spf1 a:%{h} -all")
        .a("mta.example.net", "192.0.2.77")
}

struct Case {
    name: &'static str,
    ip: &'static str,
    domain: &'static str,
    sender: &'static str,
    want: SpfResult,
}

const fn case(name: &'static str, ip: &'static str, domain: &'static str, want: SpfResult) -> Case {
    Case {
        name,
        ip,
        domain,
        sender: "",
        want,
    }
}

#[tokio::test]
async fn check_host_table() {
    use SpfResult::*;
    let cases = [
        case("ip4 inside", "192.0.2.5", "ip.example.org", Pass),
        case("ip4 outside", "192.0.2.200", "ip.example.org", Fail),
        case(
            "ip4-mapped is ip4",
            "::ffff:192.0.2.5",
            "ip.example.org",
            Pass,
        ),
        case("ip6 inside", "2001:db8:1:2::5", "ip.example.org", Pass),
        case("ip6 outside", "2001:db8:2::5", "ip.example.org", Fail),
        case("a of the domain", "198.51.100.1", "a.example.org", Pass),
        case("a with cidr", "203.0.113.10", "a.example.org", Pass),
        case("a cidr boundary", "203.0.113.12", "a.example.org", Fail),
        case(
            "a uses AAAA for ip6",
            "2001:db8:6::ffff",
            "a.example.org",
            Pass,
        ),
        case("mx first", "192.0.2.201", "mx.example.org", Pass),
        case("mx second", "192.0.2.202", "mx.example.org", Pass),
        case("mx ip6", "2001:db8::202", "mx.example.org", Pass),
        case("mx no match", "192.0.2.203", "mx.example.org", SoftFail),
        case("null mx", "192.0.2.203", "nullmx.example.org", Neutral),
        case(
            "exists with macros",
            "192.0.2.10",
            "exists.example.org",
            Pass,
        ),
        case(
            "exists without a record",
            "192.0.2.11",
            "exists.example.org",
            Fail,
        ),
        case("ptr validated", "192.0.2.33", "ptr.example.org", Pass),
        case("ptr not validated", "192.0.2.34", "ptr.example.org", Fail),
        case("ptr missing", "192.0.2.35", "ptr.example.org", Fail),
        case("include pass", "192.0.2.5", "inc.example.org", Pass),
        case(
            "include pass via the second",
            "198.51.100.7",
            "inc.example.org",
            Pass,
        ),
        case(
            "include softfail and fail do not match",
            "203.0.113.50",
            "inc.example.org",
            Neutral,
        ),
        case(
            "include of none",
            "192.0.2.5",
            "incnone.example.org",
            PermError,
        ),
        case(
            "include temperror",
            "192.0.2.5",
            "inctemp.example.org",
            TempError,
        ),
        case(
            "redirect after mechanisms",
            "203.0.113.1",
            "redir.example.org",
            Pass,
        ),
        case("redirect followed", "192.0.2.5", "redir.example.org", Pass),
        case("redirect result", "203.0.113.2", "redir.example.org", Fail),
        case(
            "redirect ignored with all",
            "192.0.2.5",
            "redirall.example.org",
            Neutral,
        ),
        case(
            "redirect to none",
            "192.0.2.5",
            "redirnone.example.org",
            PermError,
        ),
        case("two records", "192.0.2.5", "two.example.org", PermError),
        case("no spf among txt", "192.0.2.5", "other.example.org", None),
        case("no txt", "192.0.2.5", "host.example.org", None),
        case("nxdomain", "192.0.2.5", "nothing.example.org", None),
        case("single label", "192.0.2.5", "localhost", None),
        case("address literal", "192.0.2.5", "[192.0.2.5]", None),
        case("empty label", "192.0.2.5", "a..example.org", None),
        case(
            "syntax error after a match",
            "192.0.2.1",
            "bad.example.org",
            PermError,
        ),
        case("empty record", "192.0.2.1", "empty.example.org", Neutral),
        case(
            "unknown modifier ignored",
            "192.0.2.1",
            "unknownmod.example.org",
            Fail,
        ),
        case("servfail", "192.0.2.1", "servfail.example.org", TempError),
        case(
            "timeout at the top",
            "192.0.2.1",
            "slow.example.org",
            TempError,
        ),
        case(
            "third void lookup",
            "192.0.2.10",
            "void.example.org",
            PermError,
        ),
        case(
            "two void lookups",
            "192.0.2.10",
            "twovoid.example.org",
            Pass,
        ),
        case("ten dns terms", "192.0.2.10", "ten.example.org", Pass),
        case(
            "eleven dns terms",
            "192.0.2.10",
            "eleven.example.org",
            PermError,
        ),
        case("include loop", "192.0.2.10", "loop.example.org", PermError),
        case(
            "mx match before the limit",
            "192.0.2.3",
            "manymx.example.org",
            Pass,
        ),
        case(
            "mx over the limit",
            "192.0.2.11",
            "manymx.example.org",
            PermError,
        ),
        case("p macro", "192.0.2.33", "pmacro.example.org", Pass),
        case("p macro unknown", "192.0.2.34", "pmacro.example.org", Fail),
    ];
    let dns = zone();
    for c in cases {
        let ip: IpAddr = c.ip.parse().unwrap();
        let sender = if c.sender.is_empty() {
            format!("alice@{}", c.domain)
        } else {
            c.sender.to_owned()
        };
        let got = check_host(&dns, ip, c.domain, &sender, "mta.example.net").await;
        assert_eq!(
            got.result, c.want,
            "{}: {} ({})",
            c.name, got.result, got.explanation
        );
    }
}

#[tokio::test]
async fn exists_sees_the_local_part() {
    let dns = zone();
    let ip: IpAddr = "192.0.2.10".parse().unwrap();
    let got = check_host(
        &dns,
        ip,
        "exists.example.org",
        "alice+tag@exists.example.org",
        "h.example.net",
    )
    .await;
    assert_eq!(got.result, SpfResult::Pass, "{}", got.explanation);
    let got = check_host(
        &dns,
        ip,
        "exists.example.org",
        "bob@exists.example.org",
        "h.example.net",
    )
    .await;
    assert_eq!(got.result, SpfResult::Fail);
}

#[tokio::test]
async fn identities() {
    let dns = zone();
    let ip: IpAddr = "192.0.2.77".parse().unwrap();
    // HELO identity: the HELO name's record, %{h} is the HELO name.
    let got = check_helo(&dns, ip, "helo.example.org").await;
    assert_eq!(
        got.result,
        SpfResult::Fail,
        "a:%{{h}} of helo.example.org itself"
    );
    let got = check_mail_from(&dns, ip, "someone@helo.example.org", "mta.example.net").await;
    assert_eq!(got.result, SpfResult::Pass, "{}", got.explanation);
    // An empty MAIL FROM is checked as postmaster@helo.
    let got = check_mail_from(&dns, "192.0.2.5".parse().unwrap(), "<>", "ip.example.org").await;
    assert_eq!(got.result, SpfResult::Pass);
    assert_eq!(
        got.record.as_deref(),
        Some("v=spf1 ip4:192.0.2.0/25 ip6:2001:db8:1::/48 -all")
    );
    let got = check_mail_from(
        &dns,
        "192.0.2.5".parse().unwrap(),
        "",
        "nothing.example.org",
    )
    .await;
    assert_eq!(got.result, SpfResult::None);
}

#[tokio::test]
async fn explanations() {
    let dns = zone();
    let ip: IpAddr = "192.0.2.9".parse().unwrap();
    let got = check_mail_from(&dns, ip, "@exp.example.org", "h.example.net").await;
    assert_eq!(got.result, SpfResult::Fail);
    assert_eq!(
        got.explanation,
        "192.0.2.9 may not send for exp.example.org (postmaster@exp.example.org, 192.0.2.9, in-addr)"
    );
    // Two TXT records for exp=: no explanation, the built-in sentence names the term.
    let got = check_host(&dns, ip, "badexp.example.org", "a@badexp.example.org", "h").await;
    assert_eq!(got.result, SpfResult::Fail);
    assert!(
        got.explanation.contains("matched \"-all\""),
        "{}",
        got.explanation
    );
    // An include's own exp= is never used; the including record's is.
    let got = check_host(&dns, ip, "incexp.example.org", "a@incexp.example.org", "h").await;
    assert_eq!(got.explanation, "the including domain explains");
    // Pass explains the term that matched.
    let got = check_host(
        &dns,
        "192.0.2.5".parse().unwrap(),
        "inc.example.org",
        "a@inc.example.org",
        "h",
    )
    .await;
    assert!(
        got.explanation.contains("include:ip.example.org"),
        "{}",
        got.explanation
    );
}

#[tokio::test]
async fn counters() {
    let dns = zone();
    let got = check_host(
        &dns,
        "192.0.2.10".parse().unwrap(),
        "twovoid.example.org",
        "a@twovoid.example.org",
        "h",
    )
    .await;
    assert_eq!((got.dns_lookups, got.void_lookups), (2, 2));
    let got = check_host(
        &dns,
        "192.0.2.5".parse().unwrap(),
        "redir.example.org",
        "a@redir.example.org",
        "h",
    )
    .await;
    assert_eq!(got.dns_lookups, 1, "redirect counts, ip4 does not");
    assert_eq!(
        got.record.as_deref(),
        Some("v=spf1 ip4:203.0.113.1 redirect=ip.example.org")
    );
}

#[tokio::test]
async fn ptr_lookups_are_bounded() {
    let mut dns = MemoryDns::new().txt("p.example.org", "v=spf1 ptr:example.net -all");
    for i in 0..12 {
        dns = dns
            .ptr("192.0.2.50", &format!("h{i}.example.net"))
            .a(&format!("h{i}.example.net"), "192.0.2.60");
    }
    dns = dns.a("h11.example.net", "192.0.2.50");
    let got = check_host(
        &dns,
        "192.0.2.50".parse().unwrap(),
        "p.example.org",
        "a@p.example.org",
        "h",
    )
    .await;
    assert_eq!(got.result, SpfResult::Fail, "the 12th PTR name is ignored");
    // 1 TXT + 1 PTR + at most 10 address lookups.
    assert!(dns.query_count() <= 12, "{} queries", dns.query_count());
}

#[test]
fn result_words() {
    for r in SpfResult::ALL {
        assert_eq!(r.to_string().parse::<SpfResult>(), Ok(r));
    }
    assert_eq!("SoftFail".parse::<SpfResult>(), Ok(SpfResult::SoftFail));
    assert!("ambiguous".parse::<SpfResult>().is_err());
}

#[tokio::test]
async fn inspect_counts_the_whole_tree() {
    let dns = MemoryDns::new()
        .txt(
            "top.example.org",
            "v=spf1 a mx include:one.example.org include:%{i}.dyn.example.org ptr +all",
        )
        .txt("top.example.org", "some other text")
        .a("top.example.org", "192.0.2.1")
        .txt(
            "one.example.org",
            "v=spf1 a:gone.example.org exists:gone2.example.org redirect=two.example.org",
        )
        .txt("two.example.org", "v=spf1 ip4:192.0.2.0/24 -all");
    let r = inspect(&dns, "top.example.org").await.unwrap();
    assert_eq!(
        r.records,
        vec!["v=spf1 a mx include:one.example.org include:%{i}.dyn.example.org ptr +all"]
    );
    assert_eq!(r.parse_error, Option::None);
    // a, mx, include, include, ptr at the top; a, exists, redirect below.
    assert_eq!(r.dns_lookups, 8);
    // mx of top (no MX), a:gone, exists:gone2.
    assert_eq!(r.void_lookups, 3);
    assert!(r.has_plus_all && r.has_ptr);

    let dns = MemoryDns::new()
        .txt("loop.example.org", "v=spf1 include:loop.example.org -all")
        .txt("bad.example.org", "v=spf1 include:broken.example.org ~all")
        .txt("broken.example.org", "v=spf1 ip4:192.0.2.300")
        .txt("two.example.org", "v=spf1 -all")
        .txt("two.example.org", "v=spf1 ?all exp")
        .txt("plain.example.org", "hello");
    let r = inspect(&dns, "loop.example.org").await.unwrap();
    assert_eq!(r.dns_lookups, 11);
    assert!(!r.has_plus_all && !r.has_ptr);
    let r = inspect(&dns, "bad.example.org").await.unwrap();
    assert!(
        r.parse_error
            .as_deref()
            .is_some_and(|e| e.contains("broken.example.org")),
        "{r:?}"
    );
    let r = inspect(&dns, "two.example.org").await.unwrap();
    assert_eq!(r.records.len(), 2);
    assert!(
        r.parse_error
            .as_deref()
            .is_some_and(|e| e.starts_with("record 2:")),
        "{r:?}"
    );
    let r = inspect(&dns, "plain.example.org").await.unwrap();
    assert!(r.records.is_empty() && r.parse_error.is_none());
    assert_eq!(
        inspect(&dns, "missing.example.org").await,
        Err(DnsError::NxDomain)
    );
}
