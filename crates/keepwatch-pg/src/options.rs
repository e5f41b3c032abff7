//! The startup packet's `options` parameter (what `PGOPTIONS` and a connection string's
//! `options` send), read the way the server reads it (`pg_split_opts`): arguments split at
//! unescaped whitespace, a backslash taking the next character as it is. The gateway reads
//! its own settings from it (`-c keepwatch.reason=...`) and never passes it to the target.

/// The most arguments read: the server itself stops at a few hundred.
const MAX_ARGS: usize = 256;

/// The arguments of `options`, unescaped.
pub fn split_options(options: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = options.chars().peekable();
    while args.len() < MAX_ARGS {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace()) {
            match c {
                '\\' => arg.extend(chars.next()),
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    args
}

/// The value `options` sets `name` to (`-c name=value`, `-cname=value` or `--name=value`;
/// the last one wins, as on the server), if it does.
pub fn option_setting(options: &str, name: &str) -> Option<String> {
    let args = split_options(options);
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let setting = match args[i].as_str() {
            "-c" => {
                i += 1;
                args.get(i).map(String::as_str)
            }
            a => a.strip_prefix("-c").or_else(|| a.strip_prefix("--")),
        };
        if let Some((n, v)) = setting.and_then(|s| s.split_once('=')) {
            // The server folds `-` into `_` in names given with `--`.
            if n.replace('-', "_").eq_ignore_ascii_case(name) {
                found = Some(v.to_owned());
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_settings_as_the_server_does() {
        assert_eq!(split_options("  -c a=1   -cb=2\\ x "), ["-c", "a=1", "-cb=2 x"]);
        assert_eq!(split_options("\\\\ \\"), ["\\", ""]);
        let reason = "keepwatch.reason";
        assert_eq!(option_setting("-c keepwatch.reason=CHG-42", reason).as_deref(), Some("CHG-42"));
        assert_eq!(
            option_setting("-ckeepwatch.reason=fix\\ the\\ disk", reason).as_deref(),
            Some("fix the disk")
        );
        assert_eq!(option_setting("--keepwatch.reason=a=b", reason).as_deref(), Some("a=b"));
        assert_eq!(
            option_setting("-c keepwatch.reason=one -c keepwatch.reason=two", reason).as_deref(),
            Some("two")
        );
        assert_eq!(option_setting("-c work_mem=64MB", reason), None);
        assert_eq!(option_setting("-c", reason), None);
        assert_eq!(option_setting("", reason), None);
        assert!(split_options(&"a ".repeat(10_000)).len() <= MAX_ARGS);
    }
}
