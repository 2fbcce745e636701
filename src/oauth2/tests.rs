use super::*;

#[test]
fn token_urls() {
    let u = TokenUrl::parse(GOOGLE_TOKEN_URL).unwrap();
    assert!(u.https && u.port == 443 && u.host == "oauth2.googleapis.com" && u.path == "/token");
    let u = TokenUrl::parse("http://127.0.0.1:8081/t?x=1").unwrap();
    assert!(!u.https && u.port == 8081 && u.path == "/t?x=1");
    let u = TokenUrl::parse("http://[::1]:99").unwrap();
    assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 99, "/"));
    for bad in [
        "http://example.com/token",
        "ftp://x/",
        "https://",
        "https://a:0/",
        "https://u:p@example.com/",
    ] {
        assert!(TokenUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn providers() {
    assert_eq!(
        "Google".parse::<OAuth2Provider>().unwrap(),
        OAuth2Provider::Google
    );
    assert!("yahoo".parse::<OAuth2Provider>().is_err());
    assert_eq!(
        OAuth2Provider::Microsoft.default_token_url(),
        Some(MICROSOFT_TOKEN_URL)
    );
    assert_eq!(OAuth2Provider::Custom.default_token_url(), None);
}

#[test]
fn stored_form_round_trips_and_holds_no_secret() {
    let key = crate::secrets::SecretKey::from_passphrase("t");
    let r = OAuth2Ref {
        provider: OAuth2Provider::Google,
        token_url: TokenUrl::parse(GOOGLE_TOKEN_URL).unwrap(),
        client_id: "cid".into(),
        client_secret: key.seal(&SecretString::from("very-secret".to_owned())),
        refresh_token: SecretRef::Env("RT".into()),
        scope: None,
        ca_file: None,
    };
    let s = r.to_stored();
    assert!(!s.contains("very-secret"));
    assert_eq!(OAuth2Ref::from_stored(&s).unwrap(), r);
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("very-secret") && dbg.contains("env:RT"));
}

#[test]
fn xoauth2_initial_response() {
    let t = AccessToken::new("tok".into());
    assert_eq!(
        xoauth2_response("a@b.test", &t).expose_secret(),
        "user=a@b.test\x01auth=Bearer tok\x01\x01"
    );
    assert_eq!(format!("{t:?}"), "AccessToken([REDACTED])");
}
