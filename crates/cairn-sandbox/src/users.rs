//! Resolving a Dockerfile `USER` value against the image's `/etc/passwd` and `/etc/group`.

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Numeric uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Numeric gid.
    pub gid: u32,
    /// Member login names.
    pub members: Vec<String>,
}

/// Parses `/etc/passwd`, skipping malformed lines.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6).then_some(())?;
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// Parses `/etc/group`, skipping malformed lines.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then_some(())?;
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A resolved identity for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids (from `/etc/group` membership, when the user was named).
    pub groups: Vec<u32>,
    /// Home directory, if known.
    pub home: Option<String>,
}

/// Resolves `user[:group]` (names or numbers; empty = root) the way Docker does:
/// numeric ids need not exist in the image, names must.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(Identity {
            uid: 0,
            gid: 0,
            groups: vec![],
            home: Some("/root".into()),
        });
    }
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let entry = match user.parse::<u32>() {
        Ok(uid) => users
            .iter()
            .find(|e| e.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".into(),
            })),
        Err(_) => users.iter().find(|e| e.name == user).cloned(),
    }
    .ok_or_else(|| format!("unable to find user {user}: no matching entries in passwd file"))?;
    let gid = match grp {
        None => entry.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    let supplementary = if grp.is_none() && !entry.name.is_empty() {
        let mut v: Vec<u32> = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == &entry.name))
            .map(|g| g.gid)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    } else {
        vec![]
    };
    Ok(Identity {
        uid: entry.uid,
        gid,
        groups: supplementary,
        home: Some(entry.home),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbad line\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\n";

    #[test]
    fn names_and_numbers() {
        let id = resolve_user("app", PASSWD, GROUP).unwrap();
        assert_eq!((id.uid, id.gid, id.groups.clone()), (1000, 1000, vec![50]));
        assert_eq!(id.home.as_deref(), Some("/home/app"));
        let id = resolve_user("1234:5", PASSWD, GROUP).unwrap();
        assert_eq!((id.uid, id.gid), (1234, 5));
        let id = resolve_user("app:staff", PASSWD, GROUP).unwrap();
        assert_eq!((id.uid, id.gid, id.groups.len()), (1000, 50, 0));
        assert_eq!(resolve_user("", PASSWD, GROUP).unwrap().uid, 0);
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve_user("nobody2", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find user nobody2"), "{e}");
        let e = resolve_user("app:nogroup", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("unable to find group nogroup"), "{e}");
    }
}
