//! `RUN --mount=…` values, parsed (BuildKit's option names and defaults).

/// The kinds of `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// `type=bind` (the default): the context or another stage/image, read-only.
    Bind,
    /// `type=cache`: a directory kept between builds in the state dir.
    Cache,
    /// `type=secret`: a file from `--secret`, never in a layer.
    Secret,
    /// `type=tmpfs`.
    Tmpfs,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Its kind.
    pub kind: MountKind,
    /// `target`/`dst`/`destination` (secret: default `/run/secrets/<id>`).
    pub target: Option<String>,
    /// `source`/`src`: a path inside `from` (or the context).
    pub source: Option<String>,
    /// `from`: a stage name/index or image.
    pub from: Option<String>,
    /// `id` (cache, secret).
    pub id: Option<String>,
    /// Read-write (`rw`/`readwrite`) rather than read-only.
    pub rw: bool,
    /// `required` (secret).
    pub required: bool,
    /// `mode` (octal).
    pub mode: Option<u32>,
    /// `uid`.
    pub uid: Option<u32>,
    /// `gid`.
    pub gid: Option<u32>,
    /// `size` (tmpfs) in bytes.
    pub size: Option<u64>,
}

fn boolean(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(format!(
            "--mount: `{key}` takes true or false, not `{other}`"
        )),
    }
}

fn number<T>(key: &str, v: Option<&str>, radix8: bool) -> Result<T, String>
where
    T: TryFrom<u64>,
{
    let v = v.ok_or_else(|| format!("--mount: `{key}` needs a value"))?;
    let parsed = if radix8 {
        u64::from_str_radix(v, 8).ok()
    } else {
        v.parse::<u64>().ok()
    };
    parsed
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("--mount: invalid `{key}` value `{v}`"))
}

fn size(v: Option<&str>) -> Result<u64, String> {
    let v = v.ok_or("--mount: `size` needs a value")?;
    let lower = v.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b') {
        s if s.ends_with('k') => (&s[..s.len() - 1], 1u64 << 10),
        s if s.ends_with('m') => (&s[..s.len() - 1], 1 << 20),
        s if s.ends_with('g') => (&s[..s.len() - 1], 1 << 30),
        s => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("--mount: invalid size `{v}`"))
}

/// Parses one `--mount` value (`type=cache,target=/root/.cache,id=x`).
pub fn parse_mount(value: &str) -> Result<MountSpec, String> {
    let mut m = MountSpec {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        rw: false,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        size: None,
    };
    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (key, v) = match field.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (field.to_ascii_lowercase(), None),
        };
        match key.as_str() {
            "type" => {
                m.kind = match v {
                    Some("bind") => MountKind::Bind,
                    Some("cache") => MountKind::Cache,
                    Some("secret") => MountKind::Secret,
                    Some("tmpfs") => MountKind::Tmpfs,
                    Some("ssh") => return Err("--mount type=ssh is not supported yet".into()),
                    other => {
                        return Err(format!("--mount: unknown type `{}`", other.unwrap_or("")));
                    }
                }
            }
            "target" | "dst" | "destination" => m.target = v.map(str::to_string),
            "source" | "src" => m.source = v.map(str::to_string),
            "from" => m.from = v.map(str::to_string),
            "id" => m.id = v.map(str::to_string),
            "ro" | "readonly" => m.rw = !boolean(&key, v)?,
            "rw" | "readwrite" => m.rw = boolean(&key, v)?,
            "required" => m.required = boolean(&key, v)?,
            "mode" => m.mode = Some(number(&key, v, true)?),
            "uid" => m.uid = Some(number(&key, v, false)?),
            "gid" => m.gid = Some(number(&key, v, false)?),
            "size" => m.size = Some(size(v)?),
            "sharing" => match v {
                Some("shared" | "private" | "locked") => {}
                _ => return Err("--mount: `sharing` is shared, private or locked".into()),
            },
            other => return Err(format!("--mount: unknown option `{other}`")),
        }
    }
    if m.kind == MountKind::Secret && m.target.is_none() {
        let id =
            m.id.clone()
                .ok_or("--mount type=secret needs `id` or `target`")?;
        m.target = Some(format!("/run/secrets/{id}"));
    }
    if m.kind == MountKind::Secret && m.id.is_none() {
        m.id = m
            .target
            .as_deref()
            .and_then(|t| t.rsplit('/').next())
            .map(str::to_string);
    }
    if m.target.is_none() {
        return Err("--mount needs `target`".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_examples() {
        let c = parse_mount("type=cache,target=/root/.cache/go-build").unwrap();
        assert_eq!(c.kind, MountKind::Cache);
        assert_eq!(c.target.as_deref(), Some("/root/.cache/go-build"));
        let s = parse_mount("type=secret,id=aws,target=/root/.aws/credentials").unwrap();
        assert_eq!((s.kind, s.id.as_deref()), (MountKind::Secret, Some("aws")));
        let s = parse_mount("type=secret,id=token").unwrap();
        assert_eq!(s.target.as_deref(), Some("/run/secrets/token"));
        let b = parse_mount("target=/src,from=build,source=/out,rw").unwrap();
        assert_eq!(b.kind, MountKind::Bind);
        assert!(b.rw);
        assert_eq!(b.from.as_deref(), Some("build"));
        let t = parse_mount("type=tmpfs,target=/scratch,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
        let c =
            parse_mount("type=cache,target=/c,mode=0700,uid=1000,gid=1000,sharing=locked").unwrap();
        assert_eq!(
            (c.mode, c.uid, c.gid),
            (Some(0o700), Some(1000), Some(1000))
        );
    }

    #[test]
    fn errors_are_clear() {
        assert!(parse_mount("type=cache").unwrap_err().contains("target"));
        assert!(
            parse_mount("type=nfs,target=/x")
                .unwrap_err()
                .contains("unknown type")
        );
        assert!(
            parse_mount("type=cache,target=/x,bogus=1")
                .unwrap_err()
                .contains("bogus")
        );
        assert!(
            parse_mount("type=ssh")
                .unwrap_err()
                .contains("not supported")
        );
    }
}
