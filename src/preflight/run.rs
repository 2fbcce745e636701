//! Runs every check of one identity, concurrently where they are independent.

use crate::preflight::check::PreflightReport;
use crate::preflight::checks::{dkim, dmarc, dnsbl, mx, names, smtp_probe, spf};
use crate::preflight::dns::Dns;
use crate::preflight::identity::{Identity, Options};

pub async fn run_checks<D: Dns>(dns: &D, id: &Identity, opts: &Options) -> PreflightReport {
    let reverse = async {
        let ptrs = names::ptr_names(dns, id).await;
        let fcrdns = names::rdns_fcrdns(dns, id, &ptrs).await;
        (
            names::rdns_ptr(id, &ptrs),
            fcrdns,
            names::helo_matches_ptr(id, &ptrs),
        )
    };
    let (
        (ptr, fcrdns, matches),
        resolves,
        spf_helo,
        spf_mail_from,
        spf_record,
        dkim,
        dmarc,
        mx,
        bl_ip,
        bl_domain,
        probe,
    ) = tokio::join!(
        reverse,
        names::helo_resolves(dns, id),
        spf::spf_helo(dns, id),
        spf::spf_mail_from(dns, id),
        spf::spf_record(dns, id),
        dkim::dkim_key(dns, id),
        dmarc::dmarc_record(dns, id),
        mx::mx_present(dns, id),
        dnsbl::dnsbl_ip(dns, id, &opts.ip_blocklists),
        dnsbl::dnsbl_domain(dns, id, &opts.domain_blocklists),
        smtp_probe::smtp_probe(id, opts.smtp_timeout),
    );
    PreflightReport {
        results: vec![
            names::helo_syntax(id),
            resolves,
            ptr,
            fcrdns,
            matches,
            spf_helo,
            spf_mail_from,
            spf_record,
            dkim,
            dmarc,
            mx,
            bl_ip,
            bl_domain,
            probe,
        ],
    }
}
