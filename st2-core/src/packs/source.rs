//! Where a pack comes from: parsing `st2 pack install` specs and fetching a pack onto disk.
//!
//! A spec is `<name or url>[=<version or git ref>]` (StackStorm's `pack_management.py`):
//!
//! | spec | source |
//! |---|---|
//! | `name`, `name=1.0.0` (no `/`) | looked up in the pack index ([`PackSource::Index`]) |
//! | `owner/repo[=ref]` (exactly one `/`) | `https://github.com/owner/repo` |
//! | `https://…`, `http://…`, `ssh://…`, `git://…`, `user@host:path` | that git URL |
//! | `file:///abs/path` | a local git repository (cloned) or plain directory (copied) |
//!
//! The version is what follows the **last** `=`, so `git@host:owner/repo=v1.0.0` and
//! `file:///x=v1.0.0` split as expected (a path containing `=` cannot be installed with a pin).
//!
//! [`fetch`] clones (full clone, never shallow) or copies into a directory the caller chose and
//! checks out the requested ref: first `origin/<ref>` (a branch), then anything git can resolve
//! (tag, commit sha), then the tag `v<ref>` when the ref is a semver version. The `.git`
//! directory is kept, like StackStorm does (operators can inspect the checkout, and
//! `content_version` needs the history); the registrar ignores hidden directories.
//!
//! This module does blocking file and git I/O only; it never touches the store or the install
//! directory itself (callers move the fetched directory into place).

use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, Oid, Repository};

use super::PackError;

/// Where the files of a pack come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackSource {
    /// A pack name to look up in the pack index.
    Index {
        /// The name (or ref) in the index.
        name: String,
    },
    /// A git repository, cloned.
    Git {
        /// The URL as given (`owner/repo` already expanded to GitHub).
        url: String,
    },
    /// A `file://` path: cloned when it is a git repository, copied when it is a plain directory.
    Local {
        /// Absolute path.
        path: PathBuf,
    },
}

impl PackSource {
    /// The URL or path this source fetches from (the name for index sources).
    pub fn location(&self) -> String {
        match self {
            Self::Index { name } => name.clone(),
            Self::Git { url } => url.clone(),
            Self::Local { path } => format!("file://{}", path.display()),
        }
    }
}

/// A parsed install spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    /// The spec as given.
    pub spec: String,
    /// Where the pack comes from.
    pub source: PackSource,
    /// The version or git ref after `=`, if any.
    pub version: Option<String>,
}

impl InstallSpec {
    /// Parses `<name or url>[=<version>]`.
    pub fn parse(spec: &str) -> Result<Self, PackError> {
        let trimmed = spec.trim();
        let invalid = |reason: &str| PackError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if trimmed.is_empty() {
            return Err(invalid("empty spec"));
        }
        let (location, version) = match trimmed.rsplit_once('=') {
            Some((loc, ver)) => {
                let ver = ver.trim();
                if ver.is_empty() {
                    return Err(invalid(
                        "nothing after \"=\": expected a version or git ref",
                    ));
                }
                if ver.chars().any(char::is_whitespace) {
                    return Err(invalid("the version must not contain spaces"));
                }
                (loc.trim(), Some(ver.to_string()))
            }
            None => (trimmed, None),
        };
        if location.is_empty() {
            return Err(invalid("no pack name or URL before \"=\""));
        }
        let source = parse_location(location).map_err(|reason| invalid(&reason))?;
        Ok(Self {
            spec: spec.to_string(),
            source,
            version,
        })
    }

    /// The pack ref this spec most likely installs, guessed without fetching (StackStorm's
    /// dependency check does the same): the index name, or the last path segment of the URL
    /// without `.git` and a `stackstorm-` prefix. `None` when the guess is not a valid ref.
    pub fn guessed_ref(&self) -> Option<String> {
        let raw = match &self.source {
            PackSource::Index { name } => name.clone(),
            PackSource::Git { url } => {
                let last = url
                    .trim_end_matches('/')
                    .rsplit(['/', ':'])
                    .next()
                    .unwrap_or("");
                last.to_string()
            }
            PackSource::Local { path } => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let raw = raw.strip_suffix(".git").unwrap_or(&raw);
        let raw = raw.strip_prefix("stackstorm-").unwrap_or(raw);
        super::loader::is_valid_pack_ref(raw).then(|| raw.to_string())
    }
}

/// Parses the part of a spec before `=` (also used for an index entry's `repo_url`).
pub fn parse_location(location: &str) -> Result<PackSource, String> {
    if let Some(rest) = location.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err("a file:// URL needs an absolute path (file:///path/to/pack)".into());
        }
        return Ok(PackSource::Local {
            path: PathBuf::from(rest),
        });
    }
    for scheme in ["https://", "http://", "ssh://", "git://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            if rest.split('/').next().is_none_or(str::is_empty) {
                return Err(format!("the URL has no host after \"{scheme}\""));
            }
            return Ok(PackSource::Git {
                url: location.to_string(),
            });
        }
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(format!(
            "unsupported URL scheme \"{scheme}\" (use https://, http://, ssh://, git://, \
             user@host:path or file:///path)"
        ));
    }
    if is_scp_like(location) {
        return Ok(PackSource::Git {
            url: location.to_string(),
        });
    }
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    match location.matches('/').count() {
        0 if name_ok(location) => Ok(PackSource::Index {
            name: location.to_string(),
        }),
        1 => {
            let (owner, repo) = location.split_once('/').unwrap_or_default();
            if name_ok(owner) && name_ok(repo) {
                Ok(PackSource::Git {
                    url: format!("https://github.com/{owner}/{repo}"),
                })
            } else {
                Err("expected <owner>/<repo> with letters, digits, \"-\", \"_\" or \".\"".into())
            }
        }
        _ => Err("expected a pack name, <owner>/<repo>, a git URL or file:///path".into()),
    }
}

/// `user@host:path`, git's scp-like syntax.
fn is_scp_like(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else {
        return false;
    };
    let Some((host, path)) = rest.split_once(':') else {
        return false;
    };
    let plain =
        |p: &str| !p.is_empty() && !p.contains(['/', ':', '@']) && !p.contains(char::is_whitespace);
    plain(user) && plain(host) && !path.is_empty()
}

/// Which commit to check out after cloning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The default branch (the remote's `HEAD`).
    Default,
    /// A branch, tag, commit sha or semver version (→ `v<version>` tag); unknown refs are an
    /// error listing the repository's version tags.
    Named(String),
    /// The tag `v<version>` if the repository has it, the default branch otherwise (a pack
    /// installed by index name without a pin: the index version).
    PreferVersionTag(String),
}

/// A pack fetched onto disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The directory holding the pack (the `dest` given to [`fetch`]).
    pub dir: PathBuf,
    /// Where it came from (URL or `file://` path).
    pub url: String,
    /// The checked-out commit, for git sources.
    pub commit: Option<String>,
    /// The branch checked out, when the ref named a branch or the default branch was used.
    pub branch: Option<String>,
}

/// Fetches `source` into `dest` (which must not exist yet) and checks out `git_ref`.
/// Blocking: run it in `spawn_blocking`. [`PackSource::Index`] must be resolved by the caller.
pub fn fetch(source: &PackSource, git_ref: &GitRef, dest: &Path) -> Result<Fetched, PackError> {
    match source {
        PackSource::Index { name } => Err(PackError::Install(format!(
            "pack \"{name}\" must be looked up in the pack index before it is fetched"
        ))),
        PackSource::Git { url } => clone(url, git_ref, dest),
        PackSource::Local { path } => {
            let url = source.location();
            if !path.exists() {
                return Err(PackError::Install(format!(
                    "{} does not exist",
                    path.display()
                )));
            }
            if Repository::open(path).is_ok() {
                clone(&url, git_ref, dest)
            } else if path.is_dir() {
                if let GitRef::Named(r) = git_ref {
                    return Err(PackError::Install(format!(
                        "cannot check out \"{r}\": {} is a plain directory, not a git repository",
                        path.display()
                    )));
                }
                copy_dir(path, dest)?;
                Ok(Fetched {
                    dir: dest.to_path_buf(),
                    url,
                    commit: None,
                    branch: None,
                })
            } else {
                Err(PackError::Install(format!(
                    "{} is not a directory",
                    path.display()
                )))
            }
        }
    }
}

fn git_err(url: &str, e: git2::Error) -> PackError {
    let mut reason = e.message().to_string();
    let transport = matches!(
        e.class(),
        git2::ErrorClass::Net | git2::ErrorClass::Ssl | git2::ErrorClass::Ssh
    ) || reason.contains("unsupported URL protocol")
        || reason.contains("TLS stream");
    if transport && !url.starts_with("file://") {
        reason.push_str(
            " (this build fetches over the network only if libgit2 was built with HTTPS/SSH \
             support; otherwise clone the repository yourself and install it with file:///path)",
        );
    }
    PackError::Git {
        url: url.to_string(),
        reason,
    }
}

fn clone(url: &str, git_ref: &GitRef, dest: &Path) -> Result<Fetched, PackError> {
    let repo = git2::build::RepoBuilder::new()
        .clone(url, dest)
        .map_err(|e| git_err(url, e))?;
    let default_branch = repo
        .head()
        .ok()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().map(str::to_string));
    let (oid, branch) = match git_ref {
        GitRef::Default => (head_commit(&repo, url)?, default_branch),
        GitRef::PreferVersionTag(v) => {
            match tag_commit(&repo, &format!("v{}", v.trim_start_matches('v'))) {
                Some(oid) => (oid, None),
                None => (head_commit(&repo, url)?, default_branch),
            }
        }
        GitRef::Named(r) => match resolve_named(&repo, r) {
            Some(found) => found,
            None => {
                return Err(PackError::UnknownRef {
                    url: url.to_string(),
                    reference: r.clone(),
                    available: version_tags(&repo),
                })
            }
        },
    };
    checkout(&repo, oid, branch.as_deref()).map_err(|e| git_err(url, e))?;
    Ok(Fetched {
        dir: dest.to_path_buf(),
        url: url.to_string(),
        commit: Some(oid.to_string()),
        branch,
    })
}

fn head_commit(repo: &Repository, url: &str) -> Result<Oid, PackError> {
    repo.head()
        .and_then(|h| h.peel_to_commit())
        .map(|c| c.id())
        .map_err(|e| PackError::Git {
            url: url.to_string(),
            reason: format!(
                "the repository has no default branch to install from: {}",
                e.message()
            ),
        })
}

fn tag_commit(repo: &Repository, tag: &str) -> Option<Oid> {
    repo.find_reference(&format!("refs/tags/{tag}"))
        .and_then(|r| r.peel_to_commit())
        .map(|c| c.id())
        .ok()
}

/// StackStorm's order: `origin/<ref>` branch, then any revision (tag, sha), then `v<semver>`.
fn resolve_named(repo: &Repository, r: &str) -> Option<(Oid, Option<String>)> {
    if let Ok(c) = repo
        .find_reference(&format!("refs/remotes/origin/{r}"))
        .and_then(|b| b.peel_to_commit())
    {
        return Some((c.id(), Some(r.to_string())));
    }
    if let Ok(c) = repo.revparse_single(r).and_then(|o| o.peel_to_commit()) {
        return Some((c.id(), None));
    }
    if semver::Version::parse(r).is_ok() {
        return tag_commit(repo, &format!("v{r}")).map(|oid| (oid, None));
    }
    None
}

/// The repository's `vX.Y.Z` tags, sorted by version.
fn version_tags(repo: &Repository) -> Vec<String> {
    let Ok(names) = repo.tag_names(Some("v*")) else {
        return Vec::new();
    };
    let mut tags: Vec<(semver::Version, String)> = names
        .iter()
        .flatten()
        .filter_map(|t| {
            semver::Version::parse(&t[1..])
                .ok()
                .map(|v| (v, t.to_string()))
        })
        .collect();
    tags.sort();
    tags.into_iter().map(|(_, t)| t).collect()
}

/// Checks out `oid`; on a local branch named `branch` when given (like StackStorm), detached
/// otherwise.
fn checkout(repo: &Repository, oid: Oid, branch: Option<&str>) -> Result<(), git2::Error> {
    let commit = repo.find_commit(oid)?;
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))?;
    // Detach first: libgit2 refuses to move the branch HEAD is on.
    repo.set_head_detached(oid)?;
    if let Some(b) = branch {
        let local = repo.branch(b, &commit, true)?;
        if let Some(name) = local.get().name() {
            repo.set_head(name)?;
        }
    }
    Ok(())
}

/// Copies a plain directory (symlinks are recreated, not followed).
fn copy_dir(from: &Path, to: &Path) -> Result<(), PackError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Io { path, source }
    };
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.map_err(|e| PackError::Io {
            path: e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| from.to_path_buf()),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&target).map_err(io(&target))?;
        } else if ft.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io(entry.path()))?;
            symlink(&link, &target).map_err(io(&target))?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io(&target))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(link: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(link, at)
}

#[cfg(not(unix))]
fn symlink(link: &Path, at: &Path) -> std::io::Result<()> {
    let target = at
        .parent()
        .map(|p| p.join(link))
        .unwrap_or_else(|| link.to_path_buf());
    std::fs::copy(target, at).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(url: &str) -> PackSource {
        PackSource::Git { url: url.into() }
    }

    #[test]
    fn parses_spec_forms() {
        let cases: &[(&str, PackSource, Option<&str>)] = &[
            ("aws", PackSource::Index { name: "aws".into() }, None),
            (
                "aws=1.2.0",
                PackSource::Index { name: "aws".into() },
                Some("1.2.0"),
            ),
            ("  aws  ", PackSource::Index { name: "aws".into() }, None),
            (
                "StackStorm-Exchange/stackstorm-aws",
                git("https://github.com/StackStorm-Exchange/stackstorm-aws"),
                None,
            ),
            (
                "owner/repo=main",
                git("https://github.com/owner/repo"),
                Some("main"),
            ),
            (
                "https://github.com/o/r.git",
                git("https://github.com/o/r.git"),
                None,
            ),
            (
                "https://github.com/o/r.git=v1.0.0",
                git("https://github.com/o/r.git"),
                Some("v1.0.0"),
            ),
            ("http://git.local/r", git("http://git.local/r"), None),
            (
                "ssh://git@host:2222/o/r.git=dev",
                git("ssh://git@host:2222/o/r.git"),
                Some("dev"),
            ),
            (
                "git@github.com:owner/repo.git",
                git("git@github.com:owner/repo.git"),
                None,
            ),
            (
                "git@github.com:owner/repo=feature/x",
                git("git@github.com:owner/repo"),
                Some("feature/x"),
            ),
            (
                "gitlab@host:group/repo",
                git("gitlab@host:group/repo"),
                None,
            ),
            (
                "file:///srv/packs/mypack",
                PackSource::Local {
                    path: "/srv/packs/mypack".into(),
                },
                None,
            ),
            (
                "file:///x=0.2.0",
                PackSource::Local { path: "/x".into() },
                Some("0.2.0"),
            ),
            (
                "file:///a/b=3f2c9e1",
                PackSource::Local {
                    path: "/a/b".into(),
                },
                Some("3f2c9e1"),
            ),
        ];
        for (spec, source, version) in cases {
            let s = InstallSpec::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(&s.source, source, "{spec}");
            assert_eq!(s.version.as_deref(), *version, "{spec}");
            assert_eq!(s.spec, *spec);
        }
    }

    #[test]
    fn rejects_bad_specs() {
        for spec in [
            "",
            "=1.0.0",
            "aws=",
            "a/b/c",
            "file://relative/path",
            "ftp://host/repo",
            "https://",
            "owner/",
            "/repo",
            "pack name",
            "c:pack",
        ] {
            let err = InstallSpec::parse(spec).expect_err(spec);
            assert!(
                matches!(err, PackError::InvalidSpec { .. }),
                "{spec}: {err}"
            );
            assert!(err.to_string().contains(&format!("\"{spec}\"")), "{err}");
        }
    }

    #[test]
    fn guesses_refs() {
        let cases = [
            ("aws", Some("aws")),
            ("StackStorm-Exchange/stackstorm-aws", Some("aws")),
            (
                "https://github.com/o/stackstorm-my_pack.git=1.0.0",
                Some("my_pack"),
            ),
            ("git@github.com:o/slack.git", Some("slack")),
            ("file:///srv/packs/hello", Some("hello")),
            ("file:///srv/packs/my-pack", None),
        ];
        for (spec, want) in cases {
            let s = InstallSpec::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(s.guessed_ref().as_deref(), want, "{spec}");
        }
    }

    #[test]
    fn locations() {
        assert_eq!(
            PackSource::Local {
                path: "/a/b".into()
            }
            .location(),
            "file:///a/b"
        );
        assert_eq!(git("https://x/y").location(), "https://x/y");
    }

    #[test]
    fn copies_plain_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("actions")).expect("mkdir");
        std::fs::write(src.join("pack.yaml"), "name: x\n").expect("write");
        std::fs::write(src.join("actions/a.sh"), "echo\n").expect("write");
        let dest = tmp.path().join("dest");
        let got = fetch(
            &PackSource::Local { path: src.clone() },
            &GitRef::Default,
            &dest,
        )
        .expect("fetch");
        assert_eq!(got.commit, None);
        assert!(dest.join("actions/a.sh").is_file());
        let err = fetch(
            &PackSource::Local { path: src },
            &GitRef::Named("v1.0.0".into()),
            &tmp.path().join("d2"),
        )
        .expect_err("pin on plain dir");
        assert!(err.to_string().contains("not a git repository"), "{err}");
    }
}
