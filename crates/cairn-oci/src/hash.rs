use std::fmt;
use std::io::{self, Write};

use oci_spec::image::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// `sha256:<hex>` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let sum = Sha256::digest(bytes);
    sha256_digest_from_hex(&hex::encode(sum))
}

/// Build a `sha256:` [`Digest`] from 64 lowercase hex characters.
///
/// # Panics
/// If `hex` is not 64 lowercase hex characters (only call it with hasher output).
pub fn sha256_digest_from_hex(hex: &str) -> Digest {
    Digest::try_from(format!("sha256:{hex}")).expect("sha256 hex output is a valid digest")
}

/// Serialize `v` as canonical JSON: object keys sorted (also of `HashMap`-backed
/// types), no insignificant whitespace, standard JSON string escapes. Hash these
/// bytes, never `serde_json::to_vec` output of `HashMap`-backed types.
///
/// Not the OLPC canonical form: OLPC leaves control characters raw inside
/// strings, which no strict JSON parser (Go's, so skopeo's and the registries')
/// accepts — a heredoc's newline in an image's history made the config unreadable.
/// Keys are sorted by going through `serde_json::Value`, whose map is a
/// `BTreeMap` as long as serde_json's `preserve_order` feature is off (it is off in
/// this workspace; the test below fails if that changes).
pub fn canonical_json<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    let json = |source| Error::Json {
        what: "canonical serialization".into(),
        source,
    };
    let value = serde_json::to_value(v).map_err(json)?;
    serde_json::to_vec(&value).map_err(json)
}

/// A [`Write`] adapter that computes the SHA-256 and byte count of everything
/// written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Access the wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Return the wrapped writer, the digest and the byte count. Does not flush.
    pub fn finish(self) -> (W, Digest, u64) {
        let digest = sha256_digest_from_hex(&hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W> fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingWriter")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    #[test]
    fn sorted_compact_and_escaped() {
        let mut m = std::collections::HashMap::new();
        m.insert("zeta", "line 1\nline 2\t\u{1}");
        m.insert("alpha", "\"quoted\" \\ é");
        let out = canonical_json(&m).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"alpha":"\"quoted\" \\ é","zeta":"line 1\nline 2\t\u0001"}"#
        );
        // A strict parser reads it back.
        let back: std::collections::BTreeMap<String, String> =
            serde_json::from_slice(&out).unwrap();
        assert_eq!(back["zeta"], "line 1\nline 2\t\u{1}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            sha256_digest(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hashing_writer_matches_oneshot() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (buf, d, n) = w.finish();
        assert_eq!(buf, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(d, sha256_digest(b"hello world"));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut m = std::collections::HashMap::new();
        m.insert("b", 1);
        m.insert("a", 2);
        m.insert("c", 3);
        assert_eq!(canonical_json(&m).unwrap(), br#"{"a":2,"b":1,"c":3}"#);
    }
}
