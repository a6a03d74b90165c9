//! `{version}`, `{release}`, `{env}`, `{commit}`, `{host}` and `{port}` inside the argv
//! elements of the user's programs (`build`, `run`, `restart`, `switch`, `current`,
//! `trigger`) and of checks.
//!
//! A placeholder stands for the variable a program also gets in its environment
//! (`LASTGOOD_VERSION`, ...), so there is one source of truth: the variables. Each
//! element is expanded on its own and stays one element whatever the value holds, so a
//! version with spaces or shell syntax in it can never become a second argument or a
//! command: nothing here goes near a shell. Expansion is a single left-to-right pass,
//! so a value that itself contains `{host}` is not expanded again. A placeholder whose
//! variable is not set (`{port}` without a proxy) stays as written.
//!
//! A leaf module: `exec`, `supervise` and `verify` use it and it uses none of them.

/// Each placeholder and the variable it reads.
pub const NAMES: [(&str, &str); 6] = [
    ("{version}", "LASTGOOD_VERSION"),
    ("{release}", "LASTGOOD_RELEASE"),
    ("{env}", "LASTGOOD_ENV"),
    ("{commit}", "LASTGOOD_COMMIT"),
    ("{host}", "LASTGOOD_HOST"),
    ("{port}", "LASTGOOD_PORT"),
];

/// `text` with every placeholder whose variable is in `vars` replaced, in one pass.
pub fn expand(text: &str, vars: &[(String, String)]) -> String {
    let value = |var: &str| vars.iter().rev().find(|(k, _)| k == var).map(|(_, v)| v.as_str());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let hit = NAMES.iter().find_map(|(name, var)| rest.starts_with(name).then(|| (name.len(), value(var))));
        match hit {
            Some((len, Some(v))) => {
                out.push_str(v);
                rest = &rest[len..];
            }
            _ => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Each element of `argv` expanded on its own (the program too).
pub fn argv(argv: &[String], vars: &[(String, String)]) -> Vec<String> {
    argv.iter().map(|a| expand(a, vars)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("LASTGOOD_VERSION".into(), "v1 {host} $(x)".into()),
            ("LASTGOOD_RELEASE".into(), "3".into()),
            ("LASTGOOD_ENV".into(), "production".into()),
            ("LASTGOOD_COMMIT".into(), "".into()),
            ("LASTGOOD_HOST".into(), "127.0.0.1".into()),
        ]
    }

    #[test]
    fn each_element_is_expanded_on_its_own_and_stays_one_element() {
        let argv = argv(&["./ci/update.sh".into(), "--tag={version}".into(), "#{release}@{env}{host}".into()], &vars());
        assert_eq!(argv, ["./ci/update.sh", "--tag=v1 {host} $(x)", "#3@production127.0.0.1"]);
    }

    #[test]
    fn unknown_or_unset_placeholders_stay_as_written() {
        assert_eq!(expand("{port} {x} {{version}} {", &vars()), "{port} {x} {v1 {host} $(x)} {");
        assert_eq!(expand("{commit}", &vars()), "");
    }
}
