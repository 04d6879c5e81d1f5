//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

use crate::Error;

/// The registry Docker uses for names without a registry component.
pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed image reference.
///
/// Parsing follows Docker: the first path component is a registry when it
/// contains `.` or `:` or is `localhost`; otherwise the registry is
/// `docker.io`, where single-component names get the `library/` prefix.
/// Without tag and digest the tag defaults to `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`; `docker.io` for Docker Hub (also for `index.docker.io`).
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest, if any (takes precedence over the tag when fetching).
    pub digest: Option<Digest>,
}

impl Reference {
    /// Same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// Same repository (and tag) pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What goes into `/v2/<name>/manifests/<reference>`: the digest if
    /// present, else the tag, else `latest`.
    pub fn reference_str(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::InvalidReference {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest =
                    Digest::from_str(d).map_err(|e| bad(&format!("invalid digest {d:?}: {e}")))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag is a ':' after the last '/'. (A ':' before it belongs to the registry port.)
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(&rest[i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| bad(&r))?;
        }
        let (mut registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_registry(first).map_err(|r| bad(&r))?;
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        if registry == "index.docker.io" {
            registry = DOCKER_HUB.to_owned();
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| bad(&r))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), String> {
    let ok_first = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_first
        || tag.len() > MAX_TAG_LEN
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "invalid tag {tag:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        ));
    }
    Ok(())
}

/// Path components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`.
fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository name".into());
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository name {repo:?} must be lowercase"));
    }
    for comp in repo.split('/') {
        if !valid_path_component(comp) {
            return Err(format!(
                "invalid repository path component {comp:?}: use lowercase letters, digits and \
                 single separators (., _, __, -)"
            ));
        }
    }
    Ok(())
}

fn valid_path_component(comp: &str) -> bool {
    let b = comp.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__" or "-+"
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &comp[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is a DNS name, an IPv4 address or `[IPv6]`.
fn validate_registry(reg: &str) -> Result<(), String> {
    let err = || format!("invalid registry host {reg:?}");
    let (host, port) = if let Some(rest) = reg.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(err)?;
        h.parse::<std::net::Ipv6Addr>().map_err(|_| err())?;
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(err)?)),
        }
    } else {
        match reg.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(reg), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(format!("invalid port in registry {reg:?}"));
    }
    if let Some(h) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if h.is_empty() || !h.split('.').all(label_ok) {
            return Err(err());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = parse("busybox");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = parse("user/app:1.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "user/app")
        );
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        let r = parse("index.docker.io/busybox");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        let r = parse("docker.io/library/alpine:3.20");
        assert_eq!(r.repository, "library/alpine");
    }

    #[test]
    fn registry_detection_and_ports() {
        let r = parse("localhost/foo");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "foo")
        );
        let r = parse("localhost:5000/foo/bar:v1");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "foo/bar");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let r = parse("127.0.0.1:5000/foo");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = parse("ghcr.io/owner/img");
        assert_eq!(r.registry, "ghcr.io");
        let r = parse("[::1]:5000/x:y");
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(r.tag.as_deref(), Some("y"));
        // no '.', ':' and not localhost: a Hub namespace, not a registry
        let r = parse("myhost/foo");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "myhost/foo")
        );
    }

    #[test]
    fn digests() {
        let r = parse(&format!("127.0.0.1:5000/a/b@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.reference_str(), D);
        let r = parse(&format!("alpine:3@{D}"));
        assert_eq!(r.tag.as_deref(), Some("3"));
        assert_eq!(r.reference_str(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/alpine:3@{D}"));
        let again: Reference = r.to_string().parse().unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn helpers() {
        let r = parse("localhost:5000/x:1");
        let t = r.with_tag("2");
        assert_eq!(t.reference_str(), "2");
        let d = t.with_digest(D.parse().unwrap());
        assert_eq!(d.reference_str(), D);
        assert_eq!(d.name(), "localhost:5000/x");
        let none = Reference { tag: None, ..r };
        assert_eq!(none.reference_str(), "latest");
    }

    #[test]
    fn invalid_inputs() {
        for bad in [
            "",
            "Busybox",
            "localhost:5000/Foo",
            "foo:",
            "foo:-bad",
            "foo bar",
            "foo//bar",
            "foo/",
            "/foo",
            "foo..bar",
            "foo@sha256:abc",
            "foo@nodigest",
            "localhost:port/foo",
            "localhost:99999/foo",
            "-foo",
            "foo_",
            "a.b-/x",
            "[::1/x",
        ] {
            let err = bad.parse::<Reference>().expect_err(bad);
            assert!(
                matches!(err, Error::InvalidReference { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("invalid image reference"), "{err}");
        }
        let long_tag = format!("foo:{}", "a".repeat(129));
        assert!(long_tag.parse::<Reference>().is_err());
        assert!(
            format!("foo/{}", "a".repeat(260))
                .parse::<Reference>()
                .is_err()
        );
        // valid separators
        for ok in ["a__b", "a-b", "a---b", "a.b", "a_b/c.d-e", "foo:V1.2_x-y"] {
            parse(ok);
        }
    }
}
