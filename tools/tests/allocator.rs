//! The allocator option keeperkit sets is the one it means: mimalloc reads its options
//! from the environment when the process starts, so each test runs itself again in a
//! child (with or without `MIMALLOC_PURGE_DELAY`) and reads the option by its number
//! there.

use std::process::Command;

use keeperkit_tools::allocator;

const CHILD: &str = "KEEPERKIT_ALLOCATOR_TEST_CHILD";

/// Runs test `name` of this binary again in a child process with `env` set (`None`:
/// removed), and checks that it ran and passed there.
fn in_child(name: &str, env: &[(&str, Option<&str>)]) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--test-threads=1"]).env(CHILD, "1");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("run the test binary again");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child ({env:?}) failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child ran the test (a filter that matched nothing would pass too).
    assert!(text.contains("1 passed"), "the child did not run the test:\n{text}");
}

#[test]
fn option_15_is_the_purge_delay_and_keeping_freed_memory_sets_it() {
    if std::env::var_os(CHILD).is_some() {
        // In the child: the environment's value is read through option 15 ...
        assert_eq!(allocator::purge_delay(), 1234, "option 15 is not mimalloc's purge_delay");
        // ... the server's setting leaves the environment's value ...
        allocator::serve_purge_delay();
        assert_eq!(allocator::purge_delay(), 1234, "serve_purge_delay overrode the environment");
        // ... and keep_freed_memory turns purging off.
        allocator::keep_freed_memory();
        assert_eq!(allocator::purge_delay(), -1);
        return;
    }
    in_child(
        "option_15_is_the_purge_delay_and_keeping_freed_memory_sets_it",
        &[("MIMALLOC_PURGE_DELAY", Some("1234"))],
    );
}

#[test]
fn the_server_purges_after_its_delay_when_the_environment_does_not_say() {
    if std::env::var_os(CHILD).is_some() {
        allocator::keep_freed_memory();
        assert_eq!(allocator::purge_delay(), -1);
        allocator::serve_purge_delay();
        assert_eq!(allocator::purge_delay(), allocator::SERVE_PURGE_DELAY_MS);
        return;
    }
    in_child(
        "the_server_purges_after_its_delay_when_the_environment_does_not_say",
        &[("MIMALLOC_PURGE_DELAY", None)],
    );
}

#[test]
fn option_43_allows_huge_pages_and_the_binary_turns_them_off() {
    if std::env::var_os(CHILD).is_some() {
        let with_env = std::env::var_os("MIMALLOC_ALLOW_THP").is_some();
        if with_env {
            // The environment's value is read through option 43, and the binary's
            // setting leaves it.
            assert_eq!(allocator::huge_pages().0, 2, "option 43 is not mimalloc's allow_thp");
            allocator::without_huge_pages();
            assert_eq!(allocator::huge_pages(), (2, false));
        } else {
            assert_eq!(allocator::huge_pages().0, 1, "mimalloc's default allows them");
            allocator::without_huge_pages();
            assert_eq!(allocator::huge_pages(), (0, cfg!(target_os = "linux")));
        }
        return;
    }
    for env in [Some("2"), None] {
        in_child(
            "option_43_allows_huge_pages_and_the_binary_turns_them_off",
            &[("MIMALLOC_ALLOW_THP", env)],
        );
    }
}
