//! Image references and tags, checked the way Docker's grammar defines them.
//!
//! A version is an image tag for the container runtimes, and it reaches the engine and
//! the compose CLI, so it is checked here before anything runs; an image reference read
//! from a compose file or a service spec is parsed into its repository, tag and digest
//! (the keep tags and the "point the tag back" step need the repository). Pure
//! functions: no Docker needed.

/// A version for the container runtimes: a Docker tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
///
/// The runtimes turn its error into a usage error.
pub fn check_tag(tag: &str) -> Result<(), InvalidTag> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok { Ok(()) } else { Err(InvalidTag { tag: tag.to_owned() }) }
}

/// A version that cannot be an image tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a valid image tag: the version is the tag, at most 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
    tag.escape_debug()
)]
pub struct InvalidTag {
    pub tag: String,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a valid image reference: {why}", reference.escape_debug())]
pub struct InvalidReference {
    pub reference: String,
    pub why: &'static str,
}

/// A parsed image reference: `[registry[:port]/]path[:tag][@sha256:hex]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry and path, without tag or digest.
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and validates a reference as Docker's grammar defines it.
    pub fn parse(text: &str) -> Result<Self, InvalidReference> {
        let bad = |why: &'static str| InvalidReference { reference: text.to_owned(), why };
        if text.is_empty() || text.len() > 512 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| bad("the digest must be sha256:<64 hex digits>"))?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
                    return Err(bad("the digest must be sha256:<64 hex digits>"));
                }
                (r, Some(d.to_owned()))
            }
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(|_| bad("the tag holds characters a tag cannot"))?;
        }
        let mut parts: Vec<&str> = repo.split('/').collect();
        if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
            let host = parts.remove(0);
            let (name, port) = host.split_once(':').unwrap_or((host, ""));
            let host_ok = !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && port.chars().all(|c| c.is_ascii_digit());
            if !host_ok || (host.contains(':') && port.is_empty()) {
                return Err(bad("the registry host is malformed"));
            }
        }
        if parts.is_empty() || !parts.iter().all(|p| path_component(p)) {
            return Err(bad(
                "each path component must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes",
            ));
        }
        Ok(Self { repo: repo.to_owned(), tag: tag.map(str::to_owned), digest })
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if p.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// `sha256:0123456789ab` for messages.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(19)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_dockers_grammar() {
        for ok in [
            "app:v1",
            "lastgood-test/app:v1.2-rc_3",
            "registry.example.com:5000/team/app:1",
            "localhost/app",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a__b/c--d:x",
        ] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "App:v1", "app:-v1", "app:v 1", "app;rm -rf /:v1", "app@sha256:xyz", "-app", "app:", "/app"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        let r = Reference::parse("registry:5000/app:v2").unwrap();
        assert_eq!((r.repo.as_str(), r.tag.as_deref()), ("registry:5000/app", Some("v2")));
    }

    #[test]
    fn tags_and_names() {
        assert!(check_tag("v1.2.3-rc_1").is_ok());
        assert!(check_tag("-v1").is_err());
        assert!(check_tag(".v1").is_err());
        assert!(check_tag("v1/evil").is_err());
        assert!(check_tag(&"a".repeat(129)).is_err());
        // The names half of this test is `model::container_name_tests`.
    }

    #[test]
    fn errors_keep_their_messages() {
        assert_eq!(
            check_tag("-v1").unwrap_err().to_string(),
            "`-v1` is not a valid image tag: the version is the tag, at most 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
        );
        assert_eq!(
            Reference::parse("app@md5:x").unwrap_err().to_string(),
            "`app@md5:x` is not a valid image reference: the digest must be sha256:<64 hex digits>"
        );
    }
}
