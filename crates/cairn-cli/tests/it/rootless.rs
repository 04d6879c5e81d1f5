//! The rootless path: an ordinary user (with subordinate id ranges) builds an
//! image with RUN steps, and gets the same image as root does.

use crate::support::*;

/// An ordinary user builds the acceptance Dockerfile (RUN steps that chown via
/// apt-like writes to /etc, delete base files, …) and pushes it; the image is
/// identical to the one root builds.
#[test]
fn ordinary_user_builds_the_same_image_as_root() {
    let env = Env::new();
    let image = env.image("rootless/basic:v1");
    let args = ["-t".to_string(), image.clone(), "--push".to_string()];
    let out = run_as_user(&env, "basic", &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rootless build failed:\n{stderr}");
    assert!(
        !stderr.contains("only id 0 is mapped"),
        "expected the subuid mapping, got the single-id fallback:\n{stderr}"
    );
    let rootless_digest = digest_of(&String::from_utf8_lossy(&out.stdout));
    let inspect = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    assert_eq!(inspect["Digest"], rootless_digest.as_str());
    if !is_root() {
        return;
    }
    // The state dir belongs to the user, not root: the build did not need root.
    let meta = std::fs::metadata(env.path("user/state/content-v1")).unwrap();
    assert_ne!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    let root_digest = digest_of(&run_ok(&mut build_cmd(
        &env,
        "basic",
        &env.path("state-root"),
    )));
    assert_eq!(
        rootless_digest, root_digest,
        "rootless and root builds differ"
    );
}
