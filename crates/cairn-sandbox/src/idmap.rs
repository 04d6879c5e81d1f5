//! Id mappings for the build user namespace: the plan (pure) and the subid file parser.

use serde::{Deserialize, Serialize};

/// One line of `/proc/PID/uid_map` or `gid_map`: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id outside (in the parent namespace).
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// How the mapping is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapMethod {
    /// The parent holds CAP_SETUID/CAP_SETGID and writes the map files itself.
    WriteDirect,
    /// The setuid helpers `newuidmap`/`newgidmap` write the subordinate ranges.
    NewIdMap,
    /// An unprivileged parent maps only its own ids (after `setgroups` is denied).
    SingleId,
}

/// The decided mapping of the build user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapPlan {
    /// uid ranges.
    pub uids: Vec<IdRange>,
    /// gid ranges.
    pub gids: Vec<IdRange>,
    /// How they are written.
    pub method: MapMethod,
    /// A warning for the user when the mapping is degraded.
    pub warning: Option<String>,
}

impl IdMapPlan {
    /// Text for a `uid_map`/`gid_map` file or the arguments of `newuidmap`.
    pub fn map_file(ranges: &[IdRange]) -> String {
        ranges
            .iter()
            .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
            .collect()
    }

    /// Arguments after the pid for `newuidmap`/`newgidmap`.
    pub fn helper_args(ranges: &[IdRange]) -> Vec<String> {
        ranges
            .iter()
            .flat_map(|r| [r.inside, r.outside, r.count])
            .map(|n| n.to_string())
            .collect()
    }
}

/// What the planner needs to know about the calling user and the host.
#[derive(Debug, Clone, Default)]
pub struct HostIds<'a> {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// The user's login name, if it has one.
    pub user_name: Option<&'a str>,
    /// Contents of `/etc/subuid` (empty if missing).
    pub subuid: &'a str,
    /// Contents of `/etc/subgid` (empty if missing).
    pub subgid: &'a str,
    /// Whether `newuidmap` and `newgidmap` are installed.
    pub have_newidmap: bool,
    /// Contents of `/proc/self/uid_map` (the ids this process can hand out).
    pub current_uid_map: &'a str,
    /// Contents of `/proc/self/gid_map`.
    pub current_gid_map: &'a str,
}

/// Parses a `/proc/*/uid_map` style file.
pub fn parse_map_file(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|w| w.parse::<u32>().ok());
            Some(IdRange {
                inside: it.next()??,
                outside: it.next()??,
                count: it.next()??,
            })
        })
        .collect()
}

/// The subordinate ranges (`start`, `count`) of a user in `/etc/subuid` or `/etc/subgid`.
///
/// Lines are `name:start:count` or `uid:start:count`; comments and bad lines are skipped.
pub fn subid_ranges(text: &str, user_name: Option<&str>, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let who = f.next()?;
            let start = f.next()?.trim().parse::<u32>().ok()?;
            let count = f.next()?.trim().parse::<u32>().ok()?;
            let matches = Some(who) == user_name || who.parse::<u32>().ok() == Some(id);
            (matches && count > 0).then_some((start, count))
        })
        .collect()
}

fn identity_of(current: &[IdRange]) -> Vec<IdRange> {
    current
        .iter()
        .map(|r| IdRange {
            inside: r.inside,
            outside: r.inside,
            count: r.count,
        })
        .collect()
}

fn with_subids(own: u32, ranges: &[(u32, u32)]) -> Vec<IdRange> {
    let mut out = vec![IdRange {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut next = 1u32;
    for &(start, count) in ranges {
        let count = count.min(u32::MAX - next);
        if count == 0 {
            break;
        }
        out.push(IdRange {
            inside: next,
            outside: start,
            count,
        });
        next += count;
    }
    out
}

/// Decides the id mapping of the build user namespace.
///
/// * root (uid 0): every id this process can see, mapped to itself.
/// * an ordinary user with subordinate ranges and `newuidmap`: uid 0 is the user,
///   1.. are the subordinate ids.
/// * otherwise: only the user's own id, with a warning.
pub fn plan_id_maps(h: &HostIds<'_>) -> IdMapPlan {
    if h.uid == 0 {
        let mut uids = identity_of(&parse_map_file(h.current_uid_map));
        let mut gids = identity_of(&parse_map_file(h.current_gid_map));
        let full = IdRange {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        };
        if uids.is_empty() {
            uids.push(full);
        }
        if gids.is_empty() {
            gids.push(full);
        }
        return IdMapPlan {
            uids,
            gids,
            method: MapMethod::WriteDirect,
            warning: None,
        };
    }
    let sub_u = subid_ranges(h.subuid, h.user_name, h.uid);
    let sub_g = subid_ranges(h.subgid, h.user_name, h.uid);
    let who = h
        .user_name
        .map_or_else(|| format!("uid {}", h.uid), |n| format!("user `{n}`"));
    let reason = if !h.have_newidmap {
        Some("`newuidmap`/`newgidmap` are not installed (Debian package `uidmap`)".to_string())
    } else if sub_u.is_empty() || sub_g.is_empty() {
        Some(format!(
            "{who} has no subordinate id range in `/etc/subuid` and `/etc/subgid`"
        ))
    } else {
        None
    };
    match reason {
        None => IdMapPlan {
            uids: with_subids(h.uid, &sub_u),
            gids: with_subids(h.gid, &sub_g),
            method: MapMethod::NewIdMap,
            warning: None,
        },
        Some(reason) => IdMapPlan {
            uids: vec![IdRange {
                inside: 0,
                outside: h.uid,
                count: 1,
            }],
            gids: vec![IdRange {
                inside: 0,
                outside: h.gid,
                count: 1,
            }],
            method: MapMethod::SingleId,
            warning: Some(format!(
                "{reason}: only id 0 is mapped in the build namespace, so steps that change \
                 file owners or switch users (chown, useradd, apt-get) will fail and files \
                 owned by other ids in base images are written as root"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_everything_it_sees() {
        let p = plan_id_maps(&HostIds {
            uid: 0,
            gid: 0,
            current_uid_map: "         0          0 4294967295\n",
            current_gid_map: "0 0 4294967295",
            ..Default::default()
        });
        assert_eq!(p.method, MapMethod::WriteDirect);
        assert_eq!(IdMapPlan::map_file(&p.uids), "0 0 4294967295\n");
        assert!(p.warning.is_none());
    }

    #[test]
    fn root_inside_a_namespace_maps_its_own_ranges() {
        let p = plan_id_maps(&HostIds {
            uid: 0,
            gid: 0,
            current_uid_map: "0 1000 1\n1 100000 65536\n",
            current_gid_map: "0 1000 1\n1 100000 65536\n",
            ..Default::default()
        });
        assert_eq!(IdMapPlan::map_file(&p.uids), "0 0 1\n1 1 65536\n");
    }

    #[test]
    fn user_with_subids_uses_newuidmap() {
        let p = plan_id_maps(&HostIds {
            uid: 1001,
            gid: 1002,
            user_name: Some("dev"),
            subuid: "# c\nother:1:5\ndev:100000:65536\n",
            subgid: "1001:200000:1000\n",
            have_newidmap: true,
            ..Default::default()
        });
        assert_eq!(p.method, MapMethod::NewIdMap);
        assert_eq!(
            IdMapPlan::helper_args(&p.uids),
            ["0", "1001", "1", "1", "100000", "65536"]
        );
        assert_eq!(
            IdMapPlan::helper_args(&p.gids),
            ["0", "1002", "1", "1", "200000", "1000"]
        );
    }

    #[test]
    fn user_without_subids_gets_single_id_and_a_warning() {
        let p = plan_id_maps(&HostIds {
            uid: 1001,
            gid: 1001,
            user_name: Some("dev"),
            subuid: "other:100000:65536\n",
            subgid: "other:100000:65536\n",
            have_newidmap: true,
            ..Default::default()
        });
        assert_eq!(p.method, MapMethod::SingleId);
        assert_eq!(IdMapPlan::map_file(&p.uids), "0 1001 1\n");
        let w = p.warning.unwrap();
        assert!(w.contains("user `dev` has no subordinate id range"), "{w}");
    }

    #[test]
    fn missing_newuidmap_is_named() {
        let p = plan_id_maps(&HostIds {
            uid: 1001,
            gid: 1001,
            user_name: Some("dev"),
            subuid: "dev:100000:65536\n",
            subgid: "dev:100000:65536\n",
            have_newidmap: false,
            ..Default::default()
        });
        assert_eq!(p.method, MapMethod::SingleId);
        assert!(p.warning.unwrap().contains("uidmap"));
    }
}
