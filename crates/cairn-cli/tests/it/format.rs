//! `cairn build --format docker`: a Docker schema2 image pushed to a real
//! registry, read back with skopeo; the format is part of the whole-image cache
//! key, so an OCI build never takes a recorded Docker image and vice versa.

use std::process::Output;

use crate::support::*;

fn raw_manifest(image: &str) -> serde_json::Value {
    skopeo_json(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn build_ok(env: &Env, state: &str, extra: &[&str]) -> (String, String) {
    let out = run(build_cmd(env, "basic", &env.path(state)).args(extra));
    assert!(out.status.success(), "build failed:\n{}", stderr(&out));
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr(&out),
    )
}

#[test]
fn docker_format_pushes_schema2_and_has_its_own_image_key() {
    let env = Env::new();
    let cache = env.image("cache/format");
    let docker_img = env.image("fmt/basic:docker");
    let (out, _) = build_ok(
        &env,
        "s1",
        &[
            "--format",
            "docker",
            "--cache-repo",
            &cache,
            "-t",
            &docker_img,
            "--push",
        ],
    );
    let docker_digest = digest_of(&out);

    let raw = raw_manifest(&docker_img);
    assert_eq!(
        raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{raw:#}"
    );
    assert_eq!(raw["schemaVersion"], 2);
    assert_eq!(
        raw["config"]["mediaType"], "application/vnd.docker.container.image.v1+json",
        "{raw:#}"
    );
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 7, "{raw:#}");
    for l in layers {
        assert_eq!(
            l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "{raw:#}"
        );
    }
    // skopeo parses it as an image and agrees on the digest cairn printed.
    let inspect = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{docker_img}"),
    ]);
    assert_eq!(inspect["Digest"], docker_digest.as_str(), "{inspect:#}");
    let config = skopeo_json(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{docker_img}"),
    ]);
    assert_eq!(config["config"]["WorkingDir"], "/work");

    // The same build in the OCI format, same cache: the steps hit, but the
    // recorded Docker image is not taken; an OCI manifest is assembled.
    let oci_img = env.image("fmt/basic:oci");
    let (out, err) = build_ok(
        &env,
        "s2",
        &["--cache-repo", &cache, "-t", &oci_img, "--push"],
    );
    assert!(!err.contains("Using cached image"), "{err}");
    let oci_digest = digest_of(&out);
    assert_ne!(oci_digest, docker_digest);
    let raw_oci = raw_manifest(&oci_img);
    assert_eq!(
        raw_oci["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{raw_oci:#}"
    );
    assert_eq!(
        raw_oci["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    // Same layers (the format changes media types, not bytes).
    let digests = |m: &serde_json::Value| -> Vec<String> {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(digests(&raw), digests(&raw_oci));

    // Docker again from an empty state: a full hit on the Docker image.
    let again = env.image("fmt/basic:docker-again");
    let (out, err) = build_ok(
        &env,
        "s3",
        &[
            "--format",
            "docker",
            "--cache-repo",
            &cache,
            "-t",
            &again,
            "--push",
        ],
    );
    assert!(err.contains("Using cached image"), "{err}");
    assert_eq!(digest_of(&out), docker_digest);
    assert_eq!(
        raw_manifest(&again)["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn docker_format_refuses_zstd_layers_before_building() {
    let env = Env::new();
    let out = run(build_cmd(&env, "basic", &env.path("s")).args([
        "--format",
        "docker",
        "--layer-compression",
        "zstd",
        "-t",
        &env.image("fmt/zstd:v1"),
    ]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--format docker needs gzip layers"), "{err}");
    assert!(!err.contains(" | "), "a step ran:\n{err}");
}
