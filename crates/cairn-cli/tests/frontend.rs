//! `cairn parse` and `cairn expand`, run as the built binary (fixtures in
//! `testdata/dockerfile/`).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/dockerfile")
        .join(name)
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env_remove("CAIRN_LOG")
        .output()
        .expect("run cairn")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cairn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "cairn succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn parse_json(name: &str) -> Vec<Value> {
    let path = fixture(name);
    let out = cairn(&["parse", "--format", "json", path.to_str().unwrap()]);
    match serde_json::from_str(&stdout(&out)).unwrap() {
        Value::Array(v) => v,
        other => panic!("not an array: {other}"),
    }
}

#[test]
fn parse_prints_one_object_per_instruction() {
    let nodes = parse_json("contract.Dockerfile");
    let kinds: Vec<&str> = nodes
        .iter()
        .map(|n| n["instruction"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ARG",
            "FROM",
            "RUN",
            "ENV",
            "ENV",
            "LABEL",
            "COPY",
            "RUN",
            "ONBUILD",
            "HEALTHCHECK",
            "CMD"
        ]
    );
    assert_eq!(
        nodes[0],
        json!({"instruction": "ARG", "flags": [], "args": ["BASE=alpine"],
               "json_form": false, "heredocs": [], "line": 2, "end_line": 2})
    );
    assert_eq!(nodes[1]["args"], json!(["${BASE}", "AS", "build"]));
    // Flags with quotes removed, the heredoc body, lines including it.
    assert_eq!(
        nodes[2],
        json!({"instruction": "RUN",
               "flags": ["--mount=type=cache,target=/x", "--network=none"],
               "args": ["<<EOF"], "json_form": false,
               "heredocs": [{"name": "EOF", "content": "apk add gcc\n", "expand": true,
                             "chomp": false, "fd": 0}],
               "line": 4, "end_line": 7})
    );
    // ENV flat, quotes kept; legacy form flagged.
    assert_eq!(nodes[3]["args"], json!(["A", "1", "B", "\"two words\""]));
    assert!(nodes[3].get("legacy_kv").is_none());
    assert_eq!(nodes[4]["args"], json!(["LEGACY", "some value"]));
    assert_eq!(nodes[4]["legacy_kv"], json!(true));
    assert_eq!(nodes[5]["args"], json!(["\"k\"", "\"v\""]));
    // `<<-` keeps the tabs in `content` and sets `chomp`; a quoted
    // delimiter disables expansion.
    assert_eq!(nodes[6]["flags"], json!(["--chmod=755"]));
    assert_eq!(
        nodes[6]["args"],
        json!(["<<-\"run.sh\"", "/usr/local/bin/"])
    );
    assert_eq!(
        nodes[6]["heredocs"],
        json!([{"name": "run.sh", "content": "\t#!/bin/sh\n\techo \"$A\"\n",
                "expand": false, "chomp": true, "fd": 0}])
    );
    assert_eq!(
        (&nodes[6]["line"], &nodes[6]["end_line"]),
        (&json!(11), &json!(14))
    );
    // The descriptor before `<<`.
    assert_eq!(nodes[7]["heredocs"][0]["fd"], json!(3));
    assert_eq!(nodes[7]["heredocs"][0]["content"], json!("hello $A\n"));
    // ONBUILD carries its trigger, heredoc included.
    assert_eq!(nodes[8]["args"], json!([]));
    assert_eq!(
        nodes[8]["subcommand"],
        json!({"instruction": "RUN", "flags": [], "args": ["<<EOF"], "json_form": false,
               "heredocs": [{"name": "EOF", "content": "echo triggered\n", "expand": true,
                             "chomp": false, "fd": 0}],
               "line": 18, "end_line": 20})
    );
    assert_eq!(nodes[9]["flags"], json!(["--interval=5s"]));
    assert_eq!(
        nodes[9]["args"],
        json!(["CMD", "curl", "-f", "http://localhost/"])
    );
    assert_eq!(nodes[9]["json_form"], json!(true));
    assert_eq!(nodes[10]["args"], json!(["sh", "-c", "echo hi"]));
    assert_eq!(nodes[10]["json_form"], json!(true));
    assert!(
        nodes
            .iter()
            .all(|n| n.get("subcommand").is_none() || n["instruction"] == "ONBUILD")
    );
}

#[test]
fn parse_reads_standard_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["parse", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM a\nEXPOSE 80/tcp 443\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[1]["args"], json!(["80/tcp", "443"]));
}

#[test]
fn parse_errors_have_location_and_snippet() {
    let path = fixture("bad-flag.Dockerfile");
    let err = stderr(&cairn(&[
        "parse",
        "--format",
        "json",
        path.to_str().unwrap(),
    ]));
    let expected = format!(
        "{}:5:6: unknown flag \"--chmode\" for COPY\n  |\n5 | COPY --chmode=755 a /b\n  |      ^^^^^^^^",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");

    let path = fixture("unknown-instruction.Dockerfile");
    let err = stderr(&cairn(&["parse", path.to_str().unwrap()]));
    assert!(
        err.contains(":2:1: unknown instruction \"RUNN\" (did you mean RUN?)"),
        "{err}"
    );
    assert!(err.contains("2 | RUNN echo typo\n  | ^^^^"), "{err}");

    let err = stderr(&cairn(&["parse", "/nonexistent/Dockerfile"]));
    assert!(err.contains("/nonexistent/Dockerfile"), "{err}");
}

fn expand(args: &[&str]) -> Output {
    let mut all = vec!["expand"];
    all.extend_from_slice(args);
    cairn(&all)
}

#[test]
fn expand_prints_the_word() {
    assert_eq!(
        stdout(&expand(&[
            "--env",
            "FOO=/bar",
            "--",
            "${FOO}/x $FOO 'lit $FOO' \\$FOO"
        ])),
        "/bar/x /bar lit $FOO $FOO\n"
    );
    // Set-but-empty differs from unset.
    let w = "[${V-unset}|${V:-empty}|${V+set}|${V:+nonempty}]";
    assert_eq!(stdout(&expand(&["--", w])), "[unset|empty||]\n");
    assert_eq!(
        stdout(&expand(&["--env", "V=", "--", w])),
        "[|empty|set|]\n"
    );
    assert_eq!(
        stdout(&expand(&["--env", "V=x", "--", w])),
        "[x|x|set|nonempty]\n"
    );
    // The last --env wins.
    assert_eq!(
        stdout(&expand(&["--env", "A=1", "--env", "A=2", "--", "$A"])),
        "2\n"
    );
    // Only --env values are visible, not the process environment.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["expand", "--", "[$CAIRN_TEST_VISIBLE]"])
        .env("CAIRN_TEST_VISIBLE", "leak")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "[]\n");
    // A word that looks like a flag.
    assert_eq!(stdout(&expand(&["--", "--x=$A"])), "--x=\n");
    // The reference's pattern examples.
    let s = ["--env", "string=foobarbaz", "--"];
    for (word, want) in [
        ("${string#f*b}", "arbaz"),
        ("${string##f*b}", "az"),
        ("${string%b*}", "foobar"),
        ("${string%%b*}", "foo"),
        ("${string/ba/fo}", "fooforbaz"),
        ("${string//ba/fo}", "fooforfoz"),
    ] {
        let mut a = s.to_vec();
        a.push(word);
        assert_eq!(stdout(&expand(&a)), format!("{want}\n"), "{word}");
    }
}

#[test]
fn expand_words_splits_like_buildkit() {
    assert_eq!(
        stdout(&expand(&[
            "--env",
            "L=a  b",
            "--words",
            "--",
            "$L \"x y\" 'z' ${L}c"
        ])),
        "a\nb\nx y\nz\na\nbc\n"
    );
    assert_eq!(stdout(&expand(&["--words", "--", "$UNSET"])), "");
}

#[test]
fn expand_errors_exit_non_zero() {
    let err = stderr(&expand(&["--", "${REQ:?must be given}"]));
    assert!(err.contains("REQ: must be given"), "{err}");
    let err = stderr(&expand(&["--", "${unterminated"]));
    assert!(err.contains("missing '}'"), "{err}");
    let err = stderr(&expand(&["--", "'open"]));
    assert!(err.contains("single-quote"), "{err}");
    let err = stderr(&expand(&["--env", "NOEQUALS", "--", "x"]));
    assert!(err.contains("K=V"), "{err}");
}
