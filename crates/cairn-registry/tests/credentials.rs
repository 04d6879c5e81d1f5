//! Credentials from auth files and helpers, and separate pull/push
//! credentials, against a real htpasswd-protected `docker-registry`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cairn_registry::{
    AuthFile, Client, ClientOptions, Credential, CredentialSource, Error, media_types,
};
use cairn_testkit::{TEST_PASSWORD, TEST_USER, TestRegistry};
use common::{make_image, push, reference, write_script};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn client_with(pull: CredentialSource, push: CredentialSource) -> Client {
    Client::new(ClientOptions {
        pull_credentials: pull,
        push_credentials: push,
        ..ClientOptions::default()
    })
    .unwrap()
}

fn both(src: CredentialSource) -> Client {
    client_with(src.clone(), src)
}

/// A `docker-credential-<name>` script answering for `registry` with `user`/`secret`,
/// logging each server URL it is asked for to `<dir>/<name>.log`.
fn helper(dir: &Path, name: &str, registry: &str, user: &str, secret: &str) -> PathBuf {
    let log = dir.join(format!("{name}.log"));
    write_script(
        &dir.join(format!("docker-credential-{name}")),
        &format!(
            r#"#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> '{log}'
if [ "$server" = '{registry}' ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}' "$server"
else
  echo "credentials not found in native keychain"
  exit 1
fi
"#,
            log = log.display()
        ),
    );
    log
}

#[tokio::test]
async fn docker_config_auths_base64() {
    let reg = TestRegistry::start_with_basic_auth().expect("start registry");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "auths": {
                // scheme and path are ignored when matching
                format!("http://{}/v2/", reg.addr()): {"auth": b64(&format!("{TEST_USER}:{TEST_PASSWORD}"))},
                "other.example:5000": {"auth": b64("x:y")},
            }
        })
        .to_string(),
    )
    .unwrap();
    let c = both(CredentialSource::AuthFile(AuthFile::new(&cfg)));
    let img = make_image(tmp.path(), 4096, "auths");
    let r = reference(&reg.addr(), "cairn/auths:v1");
    let d = push(&c, &r, &img).await;
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, d);

    // a missing file means anonymous, not an error
    let none = both(CredentialSource::AuthFile(AuthFile::new(
        tmp.path().join("absent.json"),
    )));
    let err = none.get_manifest(&r).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(err.to_string().contains("anonymously"), "{err}");
}

#[tokio::test]
async fn podman_auth_json_username_password_and_lookup() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("auth.json");
    std::fs::write(
        &file,
        r#"{"auths":{"reg.example:5000":{"username":"u","password":"p"},
                     "https://index.docker.io/v1/":{"identitytoken":"refresh-me"},
                     "tok.example":{"registrytoken":"bearer-me"}}}"#,
    )
    .unwrap();
    let a = AuthFile::new(&file);
    assert_eq!(
        a.lookup("reg.example:5000").await.unwrap(),
        Some(Credential::basic("u", "p"))
    );
    assert_eq!(
        a.lookup("docker.io").await.unwrap(),
        Some(Credential::IdentityToken("refresh-me".into()))
    );
    assert_eq!(
        a.lookup("tok.example").await.unwrap(),
        Some(Credential::RegistryToken("bearer-me".into()))
    );
    assert_eq!(a.lookup("reg.example:5001").await.unwrap(), None);

    // malformed: the error names the file and a position, never the content
    std::fs::write(&file, r#"{"auths":{"r":{"auth":"c2VjcmV0OnNlY3JldA=="}},}"#).unwrap();
    let err = a.lookup("r").await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Credentials { .. }), "{text}");
    assert!(
        text.contains("auth.json") && text.contains("line 1"),
        "{text}"
    );
    assert!(!text.contains("c2Vj"), "{text}");
    std::fs::write(&file, r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#).unwrap();
    let err = a.lookup("r").await.unwrap_err();
    assert!(err.to_string().contains("user:password"), "{err}");
    assert!(!err.to_string().contains("nocolon"), "{err}");
}

#[tokio::test]
async fn creds_store_and_cred_helpers() {
    let reg = TestRegistry::start_with_basic_auth().expect("start registry");
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // credHelpers entry for this registry (right password) wins over credsStore (wrong one)
    let good_log = helper(&bin, "good", &reg.addr(), TEST_USER, TEST_PASSWORD);
    let bad_log = helper(&bin, "store", &reg.addr(), TEST_USER, "store-secret-wrong");
    let cfg = tmp.path().join("config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "credsStore": "store",
            "credHelpers": {reg.addr(): "good"},
            "auths": {reg.addr(): {}},
        })
        .to_string(),
    )
    .unwrap();
    let file = AuthFile::new(&cfg).with_helper_dirs(vec![bin.clone()]);
    let c = both(CredentialSource::AuthFile(file.clone()));
    let img = make_image(tmp.path(), 2048, "helpers");
    let r = reference(&reg.addr(), "cairn/helpers:v1");
    push(&c, &r, &img).await;
    c.get_manifest(&r).await.unwrap();
    let asked = std::fs::read_to_string(&good_log).unwrap();
    // resolved once per (registry, operation): one pull and one push lookup
    assert_eq!(asked.lines().collect::<Vec<_>>(), [reg.addr(), reg.addr()]);
    assert!(!bad_log.exists(), "credsStore not consulted");

    // credsStore alone: used for every registry; its wrong password is refused,
    // and neither the error nor Debug shows it
    std::fs::write(&cfg, r#"{"credsStore":"store"}"#).unwrap();
    let c = both(CredentialSource::AuthFile(file.clone()));
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    let text = format!("{err} {err:?} {c:?}");
    assert!(!text.contains("store-secret-wrong"), "{text}");
    assert!(text.contains("with the pull credentials"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&bad_log).unwrap().trim(),
        reg.addr()
    );

    // a helper that answers "not found" → anonymous; a missing helper → clear error
    assert_eq!(file.lookup("elsewhere:1").await.unwrap(), None);
    std::fs::write(&cfg, r#"{"credsStore":"missing"}"#).unwrap();
    let err = file.lookup(&reg.addr()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("docker-credential-missing not found"),
        "{err}"
    );
    // a failing helper: its stderr is shown, stdout (where secrets live) is not
    write_script(
        &bin.join("docker-credential-broken"),
        "#!/bin/sh\necho '{\"Secret\":\"leak-me\"' ; echo 'keychain locked' >&2; exit 3\n",
    );
    std::fs::write(&cfg, r#"{"credsStore":"broken"}"#).unwrap();
    let err = file.lookup(&reg.addr()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("keychain locked") && text.contains("docker-credential-broken"),
        "{text}"
    );
    assert!(!text.contains("leak-me"), "{text}");
}

#[tokio::test]
async fn separate_pull_and_push_credentials() {
    let reg = TestRegistry::start_with_basic_auth().expect("start registry");
    let tmp = tempfile::tempdir().unwrap();
    let good = Credential::basic(TEST_USER, TEST_PASSWORD);
    let bad = Credential::basic(TEST_USER, "push-secret-wrong");
    let img = make_image(tmp.path(), 2048, "split");
    let r = reference(&reg.addr(), "cairn/split:v1");

    // push credentials only: pulls are anonymous (refused), pushes work
    // (the existence check is refused and the upload goes ahead)
    let push_only = client_with(
        CredentialSource::Anonymous,
        CredentialSource::Fixed(good.clone()),
    );
    let d = push_only
        .push_image(&r, &img.blobs(), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .expect("push with push credentials");
    let err = push_only.get_manifest(&r).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");

    // pull credentials right, push credentials wrong: reads work, every write is
    // refused with a message naming the repository and the credentials used
    let per_registry: BTreeMap<String, Credential> = [(reg.addr(), good.clone())].into();
    let c = client_with(
        CredentialSource::PerRegistry(per_registry),
        CredentialSource::Fixed(bad),
    );
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, d);
    assert!(c.blob_exists(&r, &img.layer.0).await.unwrap());
    let dest = tmp.path().join("pulled");
    c.get_blob_to_file(&r, &img.layer.0, &dest).await.unwrap();
    let err = c
        .put_manifest(&r.with_tag("v2"), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Denied(_)), "{err:?}");
    assert!(
        text.contains("refused to push repository cairn/split"),
        "{text}"
    );
    assert!(text.contains("with the push credentials"), "{text}");
    assert!(!format!("{text} {err:?} {c:?}").contains("push-secret-wrong"));
    let err = c
        .delete_manifest(&r.with_digest(d.clone()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused to delete repository cairn/split"),
        "{err}"
    );
    let other = tmp.path().join("other.bin");
    std::fs::write(&other, b"new blob").unwrap();
    let err = c
        .put_blob_from_file(&r, &common::digest_of(b"new blob"), &other)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert_eq!(
        c.list_tags(&r).await.unwrap(),
        ["v1"],
        "nothing was written"
    );

    // the legacy `credentials` field still serves both
    let legacy = Client::new(ClientOptions {
        credentials: Some((TEST_USER.into(), TEST_PASSWORD.into())),
        ..ClientOptions::default()
    })
    .unwrap();
    legacy
        .put_manifest(&r.with_tag("v3"), media_types::OCI_MANIFEST, &img.manifest)
        .await
        .unwrap();
}

/// Run by [`from_env_reads_registry_auth_file`] in a child process with its own environment.
#[tokio::test]
#[ignore = "run as a child process by from_env_reads_registry_auth_file"]
async fn from_env_child() {
    let src = CredentialSource::from_env();
    let want = std::env::var("CAIRN_TEST_EXPECT").unwrap();
    let got = src.resolve("reg.example:5000").await.unwrap();
    let got = match got {
        Some(Credential::Basic { username, .. }) => username,
        other => format!("{other:?}"),
    };
    assert_eq!(got, want);
}

#[test]
fn from_env_reads_registry_auth_file() {
    let tmp = tempfile::tempdir().unwrap();
    let podman = tmp.path().join("podman.json");
    std::fs::write(
        &podman,
        r#"{"auths":{"reg.example:5000":{"auth":"ZnJvbS1wb2RtYW46cA=="}}}"#,
    )
    .unwrap();
    let docker_dir = tmp.path().join("docker");
    std::fs::create_dir(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        r#"{"auths":{"reg.example:5000":{"auth":"ZnJvbS1kb2NrZXI6cA=="}}}"#,
    )
    .unwrap();
    let run = |auth_file: Option<&Path>, expect: &str| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "from_env_child", "--ignored", "--quiet"])
            .env("DOCKER_CONFIG", &docker_dir)
            .env("XDG_RUNTIME_DIR", tmp.path().join("no-runtime-dir"))
            .env("CAIRN_TEST_EXPECT", expect)
            .env_remove("REGISTRY_AUTH_FILE");
        if let Some(f) = auth_file {
            cmd.env("REGISTRY_AUTH_FILE", f);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Some(&podman), "from-podman");
    run(None, "from-docker");
}
