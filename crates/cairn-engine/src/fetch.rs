//! ADD's remote sources and local archives: downloading an `http(s)://` URL
//! (with `--checksum`), and telling/extracting tar archives (plain, gzip, bzip2,
//! xz, zstd) with cairn's safe unpacker.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::Error;

/// An HTTP client for ADD: system roots plus an optional extra CA (PEM).
pub fn http_client(extra_ca: Option<&Path>) -> Result<reqwest::Client, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut extra: Vec<CertificateDer<'static>> = Vec::new();
    if let Some(path) = extra_ca {
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Usage(format!("--ca-cert `{}`: {e}", path.display())))?
        {
            extra.push(
                cert.map_err(|e| Error::Usage(format!("--ca-cert `{}`: {e}", path.display())))?,
            );
        }
    }
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| Error::Usage(format!("TLS set-up: {e}")))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Usage(format!("HTTP client set-up: {e}")))
}

/// The file name ADD gives a URL's content: the last path segment.
pub fn url_file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let after_scheme = path.split_once("://").map_or(path, |(_, r)| r);
    let (_, p) = after_scheme.split_once('/')?;
    p.rsplit('/').find(|s| !s.is_empty()).map(str::to_string)
}

/// Downloads `url` to `dest`, streaming, checking `--checksum` (`sha256:<hex>`).
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    checksum: Option<&str>,
    dest: &Path,
) -> Result<(), Error> {
    let expected = match checksum {
        None => None,
        Some(c) => Some(
            c.strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| Error::Usage(format!("--checksum `{c}`: expected sha256:<64 hex>")))?
                .to_ascii_lowercase(),
        ),
    };
    let fail = |m: String| Error::Image(format!("ADD {url}: {m}"));
    let got = fetch_to_file(client, url, dest, &fail, &|_| Ok(())).await?;
    if let Some(want) = expected
        && want != got
    {
        let _ = std::fs::remove_file(dest);
        return Err(fail(format!(
            "checksum mismatch: expected sha256:{want}, got sha256:{got}"
        )));
    }
    Ok(())
}

/// GETs `url` into `dest`, streaming, and returns the lowercase hex sha256 of
/// the bytes. `final_url` vets where redirects ended (`Err`: refused, with why);
/// every failure goes through `fail`, which names what was being fetched.
pub(crate) async fn fetch_to_file(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    fail: &dyn Fn(String) -> Error,
    final_url: &dyn Fn(&reqwest::Url) -> Result<(), String>,
) -> Result<String, Error> {
    let mut resp = client.get(url).send().await.map_err(|e| {
        fail(format!(
            "{e}{}",
            std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        ))
    })?;
    final_url(resp.url()).map_err(fail)?;
    if !resp.status().is_success() {
        return Err(fail(format!("server answered {}", resp.status())));
    }
    let mut file = std::fs::File::create(dest).map_err(|e| Error::io("create", dest, e))?;
    let mut hash = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        hash.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| Error::io("write", dest, e))?;
    }
    file.flush().map_err(|e| Error::io("write", dest, e))?;
    Ok(hex::encode(hash.finalize()))
}

/// Compression of a local archive, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// An uncompressed tar.
    Tar,
    /// gzip.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

/// Whether `path` is a tar archive ADD should extract (and how it is compressed).
/// Compressed files that do not hold a tar are not archives (they are copied).
pub fn sniff_archive(path: &Path) -> Option<Archive> {
    let mut head = [0u8; 6];
    let mut f = std::fs::File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    let kind = match &head[..n] {
        [0x1f, 0x8b, ..] => Archive::Gzip,
        [b'B', b'Z', b'h', ..] => Archive::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Archive::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Archive::Zstd,
        _ => Archive::Tar,
    };
    // A tar has "ustar" at offset 257 of its first header.
    let mut r = open_decompressed(path, kind).ok()?;
    let mut block = vec![0u8; 512];
    r.read_exact(&mut block).ok()?;
    (&block[257..262] == b"ustar").then_some(kind)
}

fn open_decompressed(path: &Path, kind: Archive) -> std::io::Result<Box<dyn Read>> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    Ok(match kind {
        Archive::Tar => Box::new(f),
        Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Archive::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Archive::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)),
        Archive::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(f)?),
    })
}

/// Extracts the archive into the new directory `dest` (never outside it).
pub fn extract(path: &Path, kind: Archive, dest: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
    let r = open_decompressed(path, kind).map_err(|e| Error::io("open archive", path, e))?;
    cairn_oci::apply_layer(r, dest, &cairn_oci::ApplyOptions::default())
        .map_err(Error::oci(format!("extract `{}`", path.display())))?;
    Ok(dest.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(
            url_file_name("https://h/x/file.tar.gz?a=b").as_deref(),
            Some("file.tar.gz")
        );
        assert_eq!(url_file_name("http://h:8080/a/b/").as_deref(), Some("b"));
        assert_eq!(url_file_name("https://h"), None);
    }

    #[test]
    fn archives_are_told_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        let tar = dir.path().join("a.tar");
        let st = std::process::Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(sniff_archive(&tar), Some(Archive::Tar));
        for (tool, kind) in [
            ("gzip", Archive::Gzip),
            ("bzip2", Archive::Bzip2),
            ("xz", Archive::Xz),
        ] {
            let out = std::process::Command::new(tool)
                .arg("-kc")
                .arg(&tar)
                .output();
            let Ok(out) = out else { continue };
            let p = dir.path().join(format!("a.tar.{tool}"));
            std::fs::write(&p, out.stdout).unwrap();
            assert_eq!(sniff_archive(&p), Some(kind), "{tool}");
            let dest = dir.path().join(format!("out-{tool}"));
            extract(&p, kind, &dest).unwrap();
            assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "x");
        }
        let gz_text = dir.path().join("t.gz");
        let out = std::process::Command::new("gzip")
            .arg("-c")
            .arg(src.join("f"))
            .output()
            .unwrap();
        std::fs::write(&gz_text, out.stdout).unwrap();
        assert_eq!(
            sniff_archive(&gz_text),
            None,
            "a gzip of a non-tar is copied as is"
        );
    }
}
