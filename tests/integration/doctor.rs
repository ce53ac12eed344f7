//! `snakepen doctor`: what a first run needs, each problem with the one
//! command that fixes it, and a failing exit status when one is missing.

use crate::support::{python_module, snakepen};

#[test]
fn on_a_ready_machine_everything_is_ok() {
    let out = snakepen(&["doctor"]);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    for name in ["python", "plugins", "toolchain", "cache", "fds"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "no {name} line in:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("PROBLEM"), "{}", out.stdout);
}

#[test]
fn each_problem_comes_with_its_fix_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("snakepen.toml");
    std::fs::write(
        &config,
        format!(
            "[adapter]\nname = \"no-such-adapter\"\n\n[pool]\nmodule = {:?}\ntransport = \"ray\"\npython = \"/no/such/python\"\n\n[ray]\naddress = \"127.0.0.1:1\"\n",
            python_module("handlers")
        ),
    )
    .unwrap();
    let out = snakepen(&["doctor", "--config", config.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let fix_after = |problem: &str| -> String {
        let lines: Vec<&str> = out.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("PROBLEM") && l.contains(problem))
            .unwrap_or_else(|| panic!("no problem {problem:?} in:\n{}", out.stdout));
        lines[at + 1].trim().to_string()
    };
    assert!(fix_after("cannot run /no/such/python").starts_with("fix: apt-get install python3"));
    assert!(fix_after("no-such-adapter").starts_with("fix: just plugins"));
    assert!(fix_after("cannot import ray").contains("-m pip install ray"));
    assert!(out.stderr.contains("3 problems found"), "{}", out.stderr);
}
