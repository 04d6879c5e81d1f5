//! TLS with a test CA plus htpasswd, and the registry's `auth: token` mode with
//! the testkit's token issuer, against a real `docker-registry`.

mod common;

use cairn_registry::{Client, ClientOptions, Credential, CredentialSource, Error, media_types};
use cairn_testkit::{Grant, RegistryOptions, TEST_PASSWORD, TEST_USER, TestRegistry, TokenUser};
use common::{digest_of, make_image, reference};

#[tokio::test]
async fn tls_with_extra_ca_and_htpasswd() {
    let reg = TestRegistry::start_with(RegistryOptions::new().tls().basic_auth())
        .expect("start TLS registry");
    let ca = reg.ca_pem().unwrap().as_bytes().to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 64 << 10, "tls");
    let r = reference(&reg.addr(), "cairn/tls:v1");
    let creds = CredentialSource::Fixed(Credential::basic(TEST_USER, TEST_PASSWORD));

    let c = Client::new(ClientOptions {
        tls_registries: vec![reg.addr()],
        extra_ca_pem: Some(ca),
        pull_credentials: creds.clone(),
        push_credentials: creds.clone(),
        ..ClientOptions::default()
    })
    .unwrap();
    let d = c
        .push_image(&r, &img.blobs(), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .expect("push over TLS");
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, d);
    let dest = tmp.path().join("layer.out");
    c.get_blob_to_file(&r, &img.layer.0, &dest).await.unwrap();

    // Without the CA the certificate is refused, clearly and without slow retries.
    let untrusting = Client::new(ClientOptions {
        tls_registries: vec![reg.addr()],
        pull_credentials: creds,
        ..ClientOptions::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = untrusting.get_manifest(&r).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert!(
        text.contains("certificate") && text.contains(&format!("https://{}", reg.addr())),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("unknownissuer") || text.contains("unknown issuer"),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "not retried"
    );

    // A PEM without certificates is refused when the client is built.
    let err = Client::new(ClientOptions {
        extra_ca_pem: Some(b"not a pem".to_vec()),
        ..ClientOptions::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("extra CA"), "{err}");
}

fn users() -> Vec<TokenUser> {
    vec![
        TokenUser {
            username: "puller".into(),
            password: "pull-secret".into(),
            refresh_token: None,
            grants: vec![Grant::all(&["pull"])],
        },
        TokenUser {
            username: "pusher".into(),
            password: "push-secret".into(),
            refresh_token: Some("pusher-refresh-token".into()),
            grants: vec![Grant::all(&["pull", "push", "delete"])],
        },
    ]
}

fn split_client(pull: Option<Credential>, push: Option<Credential>) -> Client {
    let src =
        |c: Option<Credential>| c.map_or(CredentialSource::Anonymous, CredentialSource::Fixed);
    Client::new(ClientOptions {
        pull_credentials: src(pull),
        push_credentials: src(push),
        ..ClientOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn token_auth_pull_only_credentials_and_multi_scope_mount() {
    let reg = TestRegistry::start_with(RegistryOptions::new().token_auth(users()))
        .expect("start token-auth registry");
    let issuer = reg.token_issuer().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), 256 << 10, "token");
    let r = reference(&reg.addr(), "cairn/app:v1");
    let puller = Credential::basic("puller", "pull-secret");
    let pusher = Credential::basic("pusher", "push-secret");

    // anonymous: refused, clearly
    let anon = split_client(None, None);
    let err = anon.get_manifest(&r).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(err.to_string().contains("anonymously"), "{err}");

    // pull with the puller, push with the pusher: each operation gets its own token
    let c = split_client(Some(puller.clone()), Some(pusher.clone()));
    let d = c
        .push_image(&r, &img.blobs(), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .expect("push with push credentials");
    let m = c.get_manifest(&r).await.unwrap();
    assert_eq!(m.digest, d);
    let log = issuer.requests();
    assert!(
        log.iter().any(|q| q.user.as_deref() == Some("pusher")
            && q.granted == ["repository:cairn/app:pull,push"]),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|q| q.user.as_deref() == Some("puller")
                && q.granted == ["repository:cairn/app:pull"]),
        "{log:#?}"
    );

    // pull-only credentials: pulls (manifest, blob, tags) work …
    let pull_only = split_client(Some(puller.clone()), Some(puller.clone()));
    assert_eq!(pull_only.get_manifest(&r).await.unwrap().digest, d);
    let dest = tmp.path().join("layer.out");
    pull_only
        .get_blob_to_file(&r, &img.layer.0, &dest)
        .await
        .unwrap();
    assert_eq!(pull_only.list_tags(&r).await.unwrap(), ["v1"]);
    // … and pushing is refused with a message naming the repository
    let err = pull_only
        .put_manifest(&r.with_tag("v2"), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Denied(_)), "{err:?}");
    assert!(
        text.contains("refused to push repository cairn/app")
            && text.contains("with the push credentials")
            && (text.contains("UNAUTHORIZED") || text.contains("DENIED")),
        "{text}"
    );
    assert!(!format!("{text} {err:?}").contains("pull-secret"));
    let new_blob = tmp.path().join("new.bin");
    std::fs::write(&new_blob, b"pull-only must not write this").unwrap();
    let err = pull_only
        .push_image(
            &r.with_tag("v3"),
            &[(digest_of(b"pull-only must not write this"), new_blob)],
            media_types::OCI_MANIFEST,
            &img.manifest,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused to push repository cairn/app"),
        "{err}"
    );
    assert_eq!(
        pull_only.list_tags(&r).await.unwrap(),
        ["v1"],
        "nothing written"
    );
    // no push credentials at all: says so
    let err = split_client(Some(puller.clone()), None)
        .put_manifest(&r.with_tag("v2"), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("anonymously (no push credentials"),
        "{err}"
    );

    // cross-repository mount with one multi-scope token
    let other = reference(&reg.addr(), "cairn/other:latest");
    assert!(
        c.mount_blob(&other, "cairn/app", &img.layer.0)
            .await
            .unwrap()
    );
    assert!(c.blob_exists(&other, &img.layer.0).await.unwrap());
    let log = issuer.requests();
    assert!(
        log.iter().any(|q| q.user.as_deref() == Some("pusher")
            && q.scopes
                .contains(&"repository:cairn/other:pull,push".to_owned())
            && q.scopes.contains(&"repository:cairn/app:pull".to_owned())
            && q.granted.len() == 2),
        "{log:#?}"
    );

    // wrong password: the token endpoint's refusal, without the password
    let wrong = split_client(Some(Credential::basic("puller", "wrong-horse")), None);
    let err = wrong.get_manifest(&r).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Auth { .. }), "{text}");
    assert!(
        text.contains("401") && text.contains("pull credentials"),
        "{text}"
    );
    assert!(!text.contains("wrong-horse"), "{text}");
}

#[tokio::test]
async fn token_auth_identity_token_from_docker_config() {
    let reg = TestRegistry::start_with(RegistryOptions::new().token_auth(users()))
        .expect("start token-auth registry");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({"auths": {reg.addr(): {"identitytoken": "pusher-refresh-token"}}})
            .to_string(),
    )
    .unwrap();
    let src = CredentialSource::AuthFile(cairn_registry::AuthFile::new(&cfg));
    let c = Client::new(ClientOptions {
        pull_credentials: src.clone(),
        push_credentials: src,
        ..ClientOptions::default()
    })
    .unwrap();
    let img = make_image(tmp.path(), 4096, "identity");
    let r = reference(&reg.addr(), "cairn/identity:v1");
    let d = c
        .push_image(&r, &img.blobs(), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap();
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, d);
    let log = reg.token_issuer().unwrap().requests();
    assert!(
        log.iter()
            .all(|q| q.method == "POST" && q.user.as_deref() == Some("pusher")),
        "{log:#?}"
    );
}
