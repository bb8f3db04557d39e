//! What happens when a test needs an interpreter that is not provisioned:
//! a loud skip on a developer machine, a failure in CI.

use std::io::Write;

/// Set to `1` to make a missing interpreter fail tests instead of skipping
/// them (as `CI=true` does).
pub const REQUIRE_ALL_ENV: &str = "PEEKA_REQUIRE_ALL_PYTHONS";

/// Whether a missing interpreter must fail the test rather than skip it:
/// `CI=true` or `PEEKA_REQUIRE_ALL_PYTHONS=1` in the environment.
pub fn require_all() -> bool {
    strict_from(
        std::env::var("CI").ok().as_deref(),
        std::env::var(REQUIRE_ALL_ENV).ok().as_deref(),
    )
}

fn strict_from(ci: Option<&str>, require_all: Option<&str>) -> bool {
    ci == Some("true") || require_all == Some("1")
}

/// Reports that a test cannot run because `what` is missing (e.g. "gdb is
/// not installed"): a `SKIPPED` banner naming the test on stderr, or a
/// panic when [`require_all`] is set. The test should return early after
/// this call.
///
/// # Panics
///
/// When [`require_all`] is set, deliberately: CI must not pass by skipping.
pub fn skip_test(what: &str) {
    skip_or_fail(what, require_all(), &mut stderr_banner());
}

/// Where skip banners go in real use: the stderr handle.
///
/// The banner is the point of a skip: a skipped test passes, so without it
/// nobody would notice that an interpreter was never exercised. It is written
/// to the handle rather than with `eprintln!`, which libtest captures and
/// hides for passing tests.
pub(crate) fn stderr_banner() -> std::io::Stderr {
    std::io::stderr()
}

/// Reports that `what` is not available: a banner written to `banner`
/// ([`stderr_banner`] outside unit tests) when `strict` is false, a panic
/// when it is true.
///
/// # Panics
///
/// When `strict` is true, deliberately: CI must not pass by skipping.
pub(crate) fn skip_or_fail(what: &str, strict: bool, banner: &mut dyn Write) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    if strict {
        panic!(
            "{what}; failing instead of skipping because CI=true or {REQUIRE_ALL_ENV}=1 \
             (test {test})"
        );
    }
    // Losing the banner (stderr closed) is no reason to fail the test.
    let _ = writeln!(banner, "\n*** SKIPPED: {what} (test {test})\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_comes_from_ci_or_the_explicit_switch() {
        assert!(!strict_from(None, None));
        assert!(!strict_from(Some("false"), Some("0")));
        assert!(strict_from(Some("true"), None));
        assert!(strict_from(None, Some("1")));
    }

    #[test]
    #[should_panic(expected = "Python 3.15 is not provisioned: x; failing instead of skipping")]
    fn strict_mode_panics() {
        skip_or_fail("Python 3.15 is not provisioned: x", true, &mut Vec::new());
    }

    #[test]
    fn lenient_mode_prints_a_banner_naming_the_test() {
        let mut banner = Vec::new();
        skip_or_fail("Python 3.15 is not provisioned: x", false, &mut banner);
        let banner = String::from_utf8(banner).unwrap();
        assert!(
            banner.contains("*** SKIPPED: Python 3.15 is not provisioned: x (test policy::tests::"),
            "{banner}"
        );
    }
}
