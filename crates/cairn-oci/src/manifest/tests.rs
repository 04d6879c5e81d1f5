use std::fs;
use std::process::Command;

use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
use serde_json::Value;

use super::*;
use crate::{
    ContentStore, ImageConfig, LayerOptions, SourceKind, sha256_digest, write_layer,
    write_oci_layout,
};

fn digest(n: u8) -> Digest {
    Digest::try_from(format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn layers() -> Vec<BlobRef> {
    vec![
        BlobRef {
            media_type: media_types::OCI_LAYER_GZIP.into(),
            digest: digest(1),
            size: 100,
        },
        BlobRef {
            media_type: media_types::DOCKER_LAYER_GZIP.into(),
            digest: digest(2),
            size: 200,
        },
    ]
}

#[test]
fn oci_manifest_is_oci_specs_canonical_bytes() {
    let bytes = image_manifest(ImageFormat::Oci, &digest(9), 42, &layers()).unwrap();
    let oracle = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(digest(9))
                .size(42u64)
                .build()
                .unwrap(),
        )
        .layers(
            layers()
                .iter()
                .map(|l| {
                    DescriptorBuilder::default()
                        .media_type(MediaType::from(l.media_type.as_str()))
                        .digest(l.digest.clone())
                        .size(l.size)
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>(),
        )
        .build()
        .unwrap();
    assert_eq!(bytes, canonical_json(&oracle).unwrap());
}

#[test]
fn docker_manifest_has_docker_media_types_and_parses_back() {
    let bytes = image_manifest(ImageFormat::Docker, &digest(9), 42, &layers()).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], media_types::DOCKER_MANIFEST);
    assert_eq!(v["config"]["mediaType"], media_types::DOCKER_CONFIG);
    assert_eq!(v["config"]["digest"], digest(9).to_string());
    assert_eq!(v["config"]["size"], 42);
    let ls = v["layers"].as_array().unwrap();
    assert_eq!(ls.len(), 2);
    for (l, want) in ls.iter().zip(layers()) {
        assert_eq!(l["mediaType"], media_types::DOCKER_LAYER_GZIP);
        assert_eq!(l["digest"], want.digest.to_string());
        assert_eq!(l["size"], want.size);
    }
    // oci-spec reads the same shape (as cairn's puller does).
    let m = oci_spec::image::ImageManifest::from_reader(bytes.as_slice()).unwrap();
    assert_eq!(m.layers().len(), 2);
    // Canonical: keys sorted, no whitespace.
    assert_eq!(canonical_json(&v).unwrap(), bytes);
    assert!(bytes.starts_with(br#"{"config":{"digest":"#));
}

#[test]
fn zstd_layers_cannot_be_docker_schema2() {
    let mut ls = layers();
    ls.push(BlobRef {
        media_type: media_types::OCI_LAYER_ZSTD.into(),
        digest: digest(3),
        size: 300,
    });
    let err = image_manifest(ImageFormat::Docker, &digest(9), 42, &ls).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("tar+zstd") && msg.contains("Docker"), "{msg}");
    // OCI takes them.
    assert!(image_manifest(ImageFormat::Oci, &digest(9), 42, &ls).is_ok());
}

#[test]
fn index_and_manifest_list() {
    let entries = vec![
        IndexEntry {
            digest: digest(4),
            size: 500,
            platform: Some(Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
            }),
        },
        IndexEntry {
            digest: digest(5),
            size: 600,
            platform: Some(Platform {
                architecture: "arm64".into(),
                os: "linux".into(),
                variant: Some("v8".into()),
            }),
        },
    ];
    for (format, list, entry) in [
        (
            ImageFormat::Oci,
            media_types::OCI_INDEX,
            media_types::OCI_MANIFEST,
        ),
        (
            ImageFormat::Docker,
            media_types::DOCKER_MANIFEST_LIST,
            media_types::DOCKER_MANIFEST,
        ),
    ] {
        let bytes = image_index(format, &entries).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], list);
        let ms = v["manifests"].as_array().unwrap();
        assert_eq!(ms[0]["mediaType"], entry);
        assert_eq!(ms[0]["digest"], digest(4).to_string());
        assert_eq!(ms[0]["platform"]["architecture"], "amd64");
        assert!(ms[0]["platform"].get("variant").is_none());
        assert_eq!(ms[1]["platform"]["variant"], "v8");
        assert_eq!(ms[1]["size"], 600);
        let idx = oci_spec::image::ImageIndex::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(idx.manifests().len(), 2);
        assert_eq!(canonical_json(&v).unwrap(), bytes);
    }
}

#[test]
fn format_names_parse_and_print() {
    assert_eq!("oci".parse::<ImageFormat>(), Ok(ImageFormat::Oci));
    assert_eq!("Docker".parse::<ImageFormat>(), Ok(ImageFormat::Docker));
    assert!("v2s2".parse::<ImageFormat>().is_err());
    assert_eq!(ImageFormat::default(), ImageFormat::Oci);
    assert_eq!(ImageFormat::Docker.to_string(), "docker");
}

fn have_skopeo() -> bool {
    Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `skopeo inspect --raw` of an OCI layout holding the image (or the index)
/// as its only entry. Not `oci:DIR:latest`: skopeo (containers/image) looks a
/// reference name up among OCI-typed entries only, so a Docker-typed entry is
/// reachable as the layout's single image.
fn skopeo_raw(layout: &std::path::Path) -> Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .arg(format!("oci:{}", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn skopeo_reads_docker_and_oci_images_and_lists_from_a_layout() {
    if !have_skopeo() {
        eprintln!("skipped: skopeo is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("hello"), b"hello\n").unwrap();
    let store = ContentStore::open(tmp.path().join("store")).unwrap();
    let mut info = None;
    let (ld, lsize) = store
        .write_blob(|w| {
            info = Some(write_layer(
                &src,
                SourceKind::Plain,
                w,
                &LayerOptions::default(),
            )?);
            Ok(())
        })
        .unwrap();
    let info = info.unwrap();
    let mut cfg = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    cfg.rootfs.diff_ids.push(info.diff_id.clone());
    let cfg_bytes = cfg.to_canonical_json().unwrap();
    let cd = store.put_bytes(&cfg_bytes).unwrap();
    let layer = BlobRef {
        media_type: info.media_type.into(),
        digest: ld,
        size: lsize,
    };
    for format in [ImageFormat::Docker, ImageFormat::Oci] {
        let m = image_manifest(
            format,
            &cd,
            cfg_bytes.len() as u64,
            std::slice::from_ref(&layer),
        )
        .unwrap();
        let md = store.put_bytes(&m).unwrap();
        assert_eq!(md, sha256_digest(&m));
        let dest = tmp.path().join(format!("{format}-image"));
        write_oci_layout(
            &store,
            &md,
            format.manifest_media_type(),
            m.len() as u64,
            &dest,
            Some("latest"),
        )
        .unwrap();
        let raw = skopeo_raw(&dest);
        assert_eq!(raw["mediaType"], format.manifest_media_type());
        assert_eq!(raw["config"]["mediaType"], format.config_media_type());

        let list = image_index(
            format,
            &[IndexEntry {
                digest: md.clone(),
                size: m.len() as u64,
                platform: Some(Platform {
                    architecture: "amd64".into(),
                    os: "linux".into(),
                    variant: None,
                }),
            }],
        )
        .unwrap();
        let ld = store.put_bytes(&list).unwrap();
        let dest = tmp.path().join(format!("{format}-index"));
        write_oci_layout(
            &store,
            &ld,
            format.index_media_type(),
            list.len() as u64,
            &dest,
            Some("latest"),
        )
        .unwrap();
        let raw = skopeo_raw(&dest);
        assert_eq!(raw["mediaType"], format.index_media_type());
        assert_eq!(raw["manifests"][0]["digest"], md.to_string());
    }
}
