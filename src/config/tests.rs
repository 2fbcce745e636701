//! Bad configs each give one precise message naming the key and what was expected.

use super::*;

const GOOD: &str = r#"
[server]
bind = "127.0.0.1:0"
database_url = "sqlite::memory:"

[[senders]]
name = "main"
address = "hello@sender.test"
helo = "mta1.sender.test"
ips = ["192.0.2.10"]
smtp = { host = "127.0.0.1", port = 5587, password = "pw" }

[[seeds]]
address = "seed1@gmail.test"
provider = "gmail"
imap = { host = "127.0.0.1", port = 1143, password = "pw" }

[[campaigns]]
name = "warm"
sender = "main"
plan = { start_per_day = 2, increase_per_day = 1, max_per_day = 10, timezone = "Europe/Berlin" }
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Some(Path::new("t.toml")), &[])
}

#[test]
fn good_config_parses_with_defaults() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.senders[0].smtp.tls, crate::domain::TlsMode::Starttls);
    assert_eq!(c.senders[0].smtp.username, "hello@sender.test");
    assert_eq!(c.seeds[0].imap.port, 1143);
    assert_eq!(c.campaigns[0].plan.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(c.warmup.mark_header, "X-Hearth-Mark");
    assert!(c.server.database_url.is_sqlite());
}

#[test]
fn plan_keys_and_their_defaults() {
    let c = load(GOOD).unwrap();
    let p = &c.campaigns[0].plan;
    assert_eq!((p.pair_daily_max, p.min_gap_secs), (1, 120));
    assert_eq!((p.variance_percent, p.provider_mix.as_ref()), (15, None));
    let text = GOOD.replace(
        "timezone = \"Europe/Berlin\" }",
        "timezone = \"Europe/Berlin\", provider_mix = { gmail = 5, outlook = 3, yahoo = 2.0 }, \
         pair_daily_max = 2, min_gap_secs = 0 }",
    );
    let c = load(&text).unwrap();
    let p = &c.campaigns[0].plan;
    assert_eq!((p.pair_daily_max, p.min_gap_secs), (2, 0));
    let mix = p.provider_mix.as_ref().unwrap();
    for (provider, share) in [
        (crate::domain::Provider::Gmail, 0.5),
        (crate::domain::Provider::Outlook, 0.3),
        (crate::domain::Provider::Yahoo, 0.2),
    ] {
        assert!((mix.share(provider) - share).abs() < 1e-9, "{provider}");
    }
}

#[test]
fn defaults_without_a_file() {
    let c = Config::from_toml("", None, &[]).unwrap();
    assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.database_url.expose(), "sqlite://data/hearth.db");
}

#[test]
fn bad_configs() {
    let cases: &[(&str, &str, &str)] = &[
        // (replace this, with this, expect this in the message)
        (
            "bind = \"127.0.0.1:0\"",
            "bind = \"nope\"",
            "t.toml: server.bind: expected IP:PORT",
        ),
        (
            "bind = \"127.0.0.1:0\"",
            "bind = \"0.0.0.0:8080\"",
            "server.api_token: required when server.bind (0.0.0.0:8080) is not a loopback address",
        ),
        (
            "database_url = \"sqlite::memory:\"",
            "database_url = \"mysql://x\"",
            "server.database_url: expected sqlite://PATH",
        ),
        ("[server]", "[server]\ncolour = 1", "unknown field `colour`"),
        (
            "helo = \"mta1.sender.test\"",
            "helo = \"localhost\"",
            "senders[0].helo: \"localhost\" is 'localhost'",
        ),
        (
            "helo = \"mta1.sender.test\"",
            "helo = \"192.0.2.1\"",
            "senders[0].helo: \"192.0.2.1\" is an IP address literal",
        ),
        (
            "address = \"hello@sender.test\"",
            "address = \"hello\"",
            "senders[0].address: \"hello\" has no '@'",
        ),
        (
            "ips = [\"192.0.2.10\"]",
            "ips = [\"192.0.2.300\"]",
            "senders[0].ips[0]: \"192.0.2.300\" is not an IP address",
        ),
        ("port = 5587", "port = 70000", "senders[0].smtp.port"),
        (
            "port = 5587,",
            "port = 5587, tls = \"maybe\",",
            "senders[0].smtp.tls: unknown tls mode \"maybe\" (expected one of: implicit, starttls, none)",
        ),
        (
            "smtp = { host = \"127.0.0.1\"",
            "smtp = { host = \"smtp.example.com\", tls = \"none\"",
            "senders[0].smtp.tls: \"none\" (plain text) is only allowed for loopback hosts",
        ),
        (
            "password = \"pw\" }\n\n[[seeds]]",
            "password = { env = \"HEARTH_TEST_SURELY_UNSET\" } }\n\n[[seeds]]",
            "senders[0].smtp.password: environment variable HEARTH_TEST_SURELY_UNSET is not set",
        ),
        (
            "password = \"pw\" }\n\n[[seeds]]",
            "password = { file = \"/nonexistent/pw\" } }\n\n[[seeds]]",
            "senders[0].smtp.password: cannot read /nonexistent/pw",
        ),
        (
            "password = \"pw\" }\n\n[[seeds]]",
            "password = { vault = \"x\" } }\n\n[[seeds]]",
            "expected a string, { env = \"VARIABLE\" } or { file = \"PATH\" }",
        ),
        (
            "provider = \"gmail\"",
            "provider = \"gmial\"",
            "seeds[0].provider: unknown provider \"gmial\"",
        ),
        (
            "provider = \"gmail\"",
            "provider = \"gmail\"\ndaily_cap = 5000",
            "seeds[0].daily_cap: expected 0 to 1000 messages a day, got 5000",
        ),
        (
            "sender = \"main\"",
            "sender = \"other\"",
            "campaigns[0].sender: no sender named \"other\"",
        ),
        (
            "timezone = \"Europe/Berlin\"",
            "timezone = \"Mars/Base\"",
            "campaigns[0].plan.timezone: expected an IANA time zone",
        ),
        (
            "max_per_day = 10",
            "max_per_day = 1",
            "campaigns[0].plan.max_per_day: expected at least start_per_day (2), got 1",
        ),
        (
            "timezone = \"Europe/Berlin\" }",
            "timezone = \"Europe/Berlin\", provider_mix = { gmail = 50, hotmail = 50 } }",
            "campaigns[0].plan.provider_mix.hotmail: unknown provider \"hotmail\"",
        ),
        (
            "timezone = \"Europe/Berlin\" }",
            "timezone = \"Europe/Berlin\", provider_mix = { gmail = 50, yahoo = 0 } }",
            "campaigns[0].plan.provider_mix: yahoo: expected a share above 0, got 0",
        ),
        (
            "timezone = \"Europe/Berlin\" }",
            "timezone = \"Europe/Berlin\", provider_mix = { gmail = 1, Gmail = 2 } }",
            "campaigns[0].plan.provider_mix: gmail: given twice",
        ),
        (
            "timezone = \"Europe/Berlin\" }",
            "timezone = \"Europe/Berlin\", provider_mix = {} }",
            "campaigns[0].plan.provider_mix: expected at least one provider",
        ),
        (
            "timezone = \"Europe/Berlin\" }",
            "timezone = \"Europe/Berlin\", pair_daily_max = 0 }",
            "campaigns[0].plan.pair_daily_max: expected at least 1",
        ),
        (
            "timezone = \"Europe/Berlin\" }",
            "timezone = \"Europe/Berlin\", min_gap_secs = 90000 }",
            "campaigns[0].plan.min_gap_secs: expected 0 to 86400 seconds",
        ),
        (
            "smtp = { host",
            "dkim = { selector = \"s1\", key_file = \"/nonexistent/k\" }\nsmtp = { host",
            "senders[0].dkim.key_file: cannot read /nonexistent/k",
        ),
        (
            "smtp = { host = \"127.0.0.1\", port = 5587",
            "smtp = { host = \"127.0.0.1\", port = 5587, ca_file = \"/nonexistent/ca.pem\"",
            "senders[0].smtp.ca_file: cannot read /nonexistent/ca.pem",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "fixture lacks {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let err = load(&text).expect_err(to).to_string();
        assert!(
            err.contains(want),
            "for {to:?}\n  got:  {err}\n  want: {want}"
        );
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = load("[server]\nbind = \n").unwrap_err().to_string();
    assert!(err.starts_with("t.toml: line 2, column"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = GOOD
        .replace("helo = \"mta1.sender.test\"", "helo = \"x\"")
        .replace("provider = \"gmail\"", "provider = \"nope\"");
    let err = load(&text).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn env_overrides() {
    let env = vec![
        (
            "HEARTH_SERVER__BIND".to_owned(),
            "127.0.0.1:9999".to_owned(),
        ),
        (
            "HEARTH_DNS__NAMESERVERS".to_owned(),
            "[\"127.0.0.1:5353\"]".to_owned(),
        ),
        ("HEARTH_LOG__FORMAT".to_owned(), "json".to_owned()),
        ("HEARTH_CONFIG".to_owned(), "ignored.toml".to_owned()),
    ];
    let c = Config::from_toml(GOOD, Some(Path::new("t.toml")), &env).unwrap();
    assert_eq!(c.server.bind.port(), 9999);
    assert_eq!(c.dns.nameservers[0].port(), 5353);
    assert_eq!(c.log.format, LogFormat::Json);
    let bad = vec![("HEARTH_SERVER__BIND".to_owned(), "x".to_owned())];
    let err = Config::from_toml(GOOD, Some(Path::new("t.toml")), &bad).unwrap_err();
    assert!(err.to_string().contains("server.bind"), "{err}");
}

#[test]
fn secrets_never_print() {
    let c = load(GOOD).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("\"pw\""), "{dbg}");
    assert_eq!(
        redact_url("postgres://hearth:s3cret@db:5432/hearth"),
        "postgres://hearth:***@db:5432/hearth"
    );
    assert!(!format!("{}", DatabaseUrl("postgres://u:s3cret@h/d".into())).contains("s3cret"));
}

#[test]
fn oauth2_blocks() {
    let text = GOOD.replace(
        "imap = { host = \"127.0.0.1\", port = 1143, password = \"pw\" }",
        "imap = { host = \"127.0.0.1\", port = 1143, oauth2 = { provider = \"google\", client_id = \"cid\", client_secret = \"cs\", refresh_token = \"rt\" } }",
    );
    let c = load(&text).unwrap();
    let o = c.seeds[0].imap.oauth2.as_ref().unwrap();
    assert_eq!(o.token_url.as_str(), crate::oauth2::GOOGLE_TOKEN_URL);
    assert!(c.seeds[0].imap.password.is_none());

    let cases = [
        (
            "oauth2 = { provider = \"yahoo\", client_id = \"c\", refresh_token = \"r\" }",
            "seeds[0].imap.oauth2.provider: unknown oauth2 provider",
        ),
        (
            "oauth2 = { provider = \"custom\", client_id = \"c\", refresh_token = \"r\" }",
            "seeds[0].imap.oauth2.token_url: required for provider \"custom\"",
        ),
        (
            "oauth2 = { provider = \"custom\", token_url = \"http://idp.example.com/t\", client_id = \"c\", refresh_token = \"r\" }",
            "seeds[0].imap.oauth2.token_url: expected an https:// URL",
        ),
        (
            "password = \"pw\", oauth2 = { provider = \"microsoft\", client_id = \"c\", refresh_token = \"r\" }",
            "seeds[0].imap.oauth2: give either password or oauth2, not both",
        ),
        (
            "oauth2 = { provider = \"microsoft\", client_id = \"c\", refresh_token = { env = \"HEARTH_TEST_NO_SUCH_VAR\" } }",
            "seeds[0].imap.oauth2.refresh_token: environment variable HEARTH_TEST_NO_SUCH_VAR is not set",
        ),
    ];
    for (block, want) in cases {
        let text = GOOD.replace(
            "password = \"pw\" }\n\n[[campaigns]]",
            &format!("{block} }}\n\n[[campaigns]]"),
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains(want), "{block}\n{err}");
    }
}

#[test]
fn content_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "subject = \"Lunch {{weekday}}?\"\ntext = \"Hi {{seed_name}},\\nlunch?\\n{{sender_name}}\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a template").unwrap();
    let text = format!(
        "{GOOD}\n[content]\ntemplates_dir = {:?}\ntemplate_share = 0.25\n[[content.templates]]\nsubject = \"Hello\"\ntext = \"Plain.\"\nhtml = \"<p>Plain.</p>\"\n",
        dir.path().to_str().unwrap()
    );
    let c = load(&text).unwrap();
    assert_eq!((c.content.templates.len(), c.content.share), (2, 0.25));
    assert!(load(GOOD).unwrap().content.templates.is_empty());

    std::fs::write(
        dir.path().join("b.toml"),
        "subject = \"x\"\ntext = \"Hi {{first_name}}\"\n",
    )
    .unwrap();
    let err = load(&text).unwrap_err().to_string();
    assert!(
        err.contains("b.toml: text: unknown placeholder {{first_name}}"),
        "{err}"
    );
    let bad = format!(
        "{GOOD}\n[content]\ntemplate_share = 2\n[[content.templates]]\nsubject = \"s\"\ntext = \"see www.x.test\"\n"
    );
    let err = load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("content.templates[0].text: \"www.\": links are not allowed"),
        "{err}"
    );
    assert!(
        err.contains("content.template_share: expected a share from 0 to 1"),
        "{err}"
    );
}

#[test]
fn seed_smtp_defaults_by_provider_and_retention() {
    let text = GOOD.replace(
        "imap = { host = \"127.0.0.1\", port = 1143, password = \"pw\" }",
        "imap = { host = \"127.0.0.1\", port = 1143, password = \"pw\" }\nsmtp = {}",
    );
    let c = load(&text).unwrap();
    let smtp = c.seeds[0].smtp.as_ref().unwrap();
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.tls),
        ("smtp.gmail.com", 587, crate::domain::TlsMode::Starttls)
    );
    assert_eq!(smtp.username, "seed1@gmail.test");
    assert!(
        matches!(smtp.password, Some(SecretSource::Inline(_))),
        "the IMAP password"
    );
    assert_eq!(c.warmup.retention_days, 30);
    // A provider without a known server needs a host.
    let other = text.replace("provider = \"gmail\"", "provider = \"other\"");
    let err = load(&other).unwrap_err().to_string();
    assert!(err.contains("seeds[0].smtp.host"), "{err}");
    let bad = text.replace("[[senders]]", "[warmup]\nretention_days = 0\n\n[[senders]]");
    let err = load(&bad).unwrap_err().to_string();
    assert!(err.contains("warmup.retention_days"), "{err}");
}
