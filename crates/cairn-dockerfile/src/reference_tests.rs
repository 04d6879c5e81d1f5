//! Examples from the Dockerfile reference (BuildKit's
//! `frontend/dockerfile/docs/reference.md`), as tests of the parser, the raw
//! nodes and the expander. Each test names the section it comes from.

use std::collections::BTreeMap;

use super::*;

fn p(text: &str) -> Dockerfile {
    parse("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"))
}

fn raw(text: &str) -> Vec<RawNode> {
    parse_raw("Dockerfile", text).unwrap_or_else(|e| panic!("{e}"))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ew(word: &str, pairs: &[(&str, &str)]) -> String {
    let m = vars(pairs);
    expand_word(word, &|n: &str| m.get(n).cloned(), '\\').unwrap()
}

/// Evaluates a one-stage Dockerfile's ARG/ENV with `build_args` and
/// returns the expanded instructions and the final scope.
fn evaluate(text: &str, build_args: &[(&str, &str)]) -> (Vec<Instruction>, ArgScope) {
    let df = p(text);
    let global = ArgScope::new(vars(build_args));
    let mut st = global.stage();
    let mut out = Vec::new();
    for ins in &df.stages[0].instructions {
        let e = ins.node.expanded(&st.lookup(), df.escape).unwrap();
        match &ins.node {
            Instruction::Arg(decls) => {
                for d in decls {
                    st.declare(d, df.escape).unwrap();
                }
            }
            Instruction::Env(_) => {
                if let Instruction::Env(pairs) = &e {
                    for (k, v) in pairs {
                        st.set_env(k, v);
                    }
                }
            }
            _ => {}
        }
        out.push(e);
    }
    (out, st)
}

/// "Environment replacement": the modifiers and the pattern examples.
#[test]
fn environment_replacement_modifiers() {
    let set = [("variable", "value"), ("empty", "")];
    assert_eq!(ew("${variable:-word}", &set), "value");
    assert_eq!(ew("${unset:-word}|${empty:-word}", &set), "word|word");
    assert_eq!(ew("${empty-word}|${unset-word}", &set), "|word");
    assert_eq!(ew("${variable:+word}|${empty:+word}", &set), "word|");
    assert_eq!(ew("${empty+word}|${unset+word}", &set), "word|");
    let str_ = [("str", "foobarbaz"), ("string", "foobarbaz")];
    assert_eq!(ew("${str#f*b}", &str_), "arbaz");
    assert_eq!(ew("${str##f*b}", &str_), "az");
    assert_eq!(ew("${string%b*}", &str_), "foobar");
    assert_eq!(ew("${string%%b*}", &str_), "foo");
    assert_eq!(ew("${string/ba/fo}", &str_), "fooforbaz");
    assert_eq!(ew("${string//ba/fo}", &str_), "fooforfoz");
    // "To match literal `?` and `*`, use a backslash escape".
    let q = [("q", "a*b?c*d")];
    assert_eq!(ew("${q#*\\*}", &q), "b?c*d");
    assert_eq!(ew("${q%\\?*}", &q), "a*b");
    // "word can be any string, including additional environment variables".
    assert_eq!(ew("${unset:-$variable/x}", &set), "value/x");
    // "\$foo or \${foo} will translate to $foo and ${foo} literals".
    assert_eq!(ew("\\$foo \\${foo}", &[("foo", "x")]), "$foo ${foo}");
}

/// "Environment replacement": the parsed-representation example.
#[test]
fn environment_replacement_example() {
    let (ins, _) = evaluate(
        "FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}   # WORKDIR /bar\nADD . $FOO       # ADD . /bar\nCOPY \\$FOO /quux # COPY $FOO /quux\n",
        &[],
    );
    // The reference's `# ...` annotations are not comments on an
    // instruction line: they are arguments. Its point is the expansion.
    assert_eq!(
        ins[1],
        Instruction::Workdir("/bar   # WORKDIR /bar".to_string())
    );
    let Instruction::Add(add) = &ins[2] else {
        panic!("{:?}", ins[2])
    };
    assert_eq!(add.sources, s(&[".", "/bar", "#", "ADD", "."]));
    let Instruction::Copy(copy) = &ins[3] else {
        panic!("{:?}", ins[3])
    };
    assert_eq!(copy.sources[0], "$FOO");
    // Without the annotations, exactly as the reference shows them.
    let (ins, _) = evaluate(
        "FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}\nADD . $FOO\nCOPY \\$FOO /quux\n",
        &[],
    );
    assert_eq!(ins[1], Instruction::Workdir("/bar".to_string()));
    let Instruction::Add(add) = &ins[2] else {
        panic!()
    };
    assert_eq!(
        (add.sources.clone(), add.dest.as_str()),
        (s(&["."]), "/bar")
    );
    let Instruction::Copy(copy) = &ins[3] else {
        panic!()
    };
    assert_eq!(
        (copy.sources.clone(), copy.dest.as_str()),
        (s(&["$FOO"]), "/quux")
    );
}

/// "Environment replacement": one value per variable for the whole
/// instruction.
#[test]
fn environment_replacement_same_value_within_instruction() {
    let (_, st) = evaluate(
        "FROM x\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n",
        &[],
    );
    assert_eq!(st.get("def").as_deref(), Some("hello"));
    assert_eq!(st.get("ghi").as_deref(), Some("bye"));
}

/// "ENV": both forms, quotes and escapes, and the legacy form's pitfall.
#[test]
fn env_examples() {
    let text = "FROM x\nENV MY_NAME=\"John Doe\"\nENV MY_DOG=Rex\\ The\\ Dog\nENV MY_CAT=fluffy\nENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy\nENV MY_VAR my-value\nENV ONE TWO= THREE=world\n";
    let (_, st) = evaluate(text, &[]);
    assert_eq!(st.get("MY_NAME").as_deref(), Some("John Doe"));
    assert_eq!(st.get("MY_DOG").as_deref(), Some("Rex The Dog"));
    assert_eq!(st.get("MY_CAT").as_deref(), Some("fluffy"));
    assert_eq!(st.get("MY_VAR").as_deref(), Some("my-value"));
    // "sets the ONE environment variable to `TWO= THREE=world`".
    assert_eq!(st.get("ONE").as_deref(), Some("TWO= THREE=world"));
    assert_eq!(st.get("TWO"), None);
    let nodes = raw(text);
    assert_eq!(
        nodes[4].args,
        s(&[
            "MY_NAME",
            "\"John Doe\"",
            "MY_DOG",
            "Rex\\ The\\ Dog",
            "MY_CAT",
            "fluffy"
        ])
    );
    assert_eq!((nodes[4].line, nodes[4].end_line), (5, 6));
    assert!(nodes[6].legacy_kv);
    assert_eq!(nodes[6].args, s(&["ONE", "TWO= THREE=world"]));
}

/// "LABEL": quoted keys, continuation inside a value, several labels.
#[test]
fn label_examples() {
    let text = "FROM x\nLABEL \"com.example.vendor\"=\"ACME Incorporated\"\nLABEL com.example.label-with-value=\"foo\"\nLABEL version=\"1.0\"\nLABEL description=\"This text illustrates \\\nthat label-values can span multiple lines.\"\nLABEL multi.label1=\"value1\" multi.label2=\"value2\" other=\"value3\"\nLABEL multi.label1=\"value1\" \\\n      multi.label2=\"value2\" \\\n      other=\"value3\"\n";
    let (ins, _) = evaluate(text, &[]);
    let labels: Vec<(String, String)> = ins
        .iter()
        .flat_map(|i| match i {
            Instruction::Label(p) => p.clone(),
            _ => Vec::new(),
        })
        .collect();
    let want = [
        ("com.example.vendor", "ACME Incorporated"),
        ("com.example.label-with-value", "foo"),
        ("version", "1.0"),
        (
            "description",
            "This text illustrates that label-values can span multiple lines.",
        ),
        ("multi.label1", "value1"),
        ("multi.label2", "value2"),
        ("other", "value3"),
        ("multi.label1", "value1"),
        ("multi.label2", "value2"),
        ("other", "value3"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(labels, want);
}

/// "ARG" > "Scope": a variable is visible from its declaration on.
#[test]
fn arg_scope_example() {
    let (ins, _) = evaluate(
        "FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n# ...\n",
        &[("username", "what_user")],
    );
    assert_eq!(ins[0], Instruction::User("some_user".to_string()));
    assert_eq!(ins[2], Instruction::User("what_user".to_string()));
}

/// "ARG" > "Using ARG variables": ENV overrides ARG; the `${:-}` idiom.
#[test]
fn arg_env_precedence_examples() {
    let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n";
    let (_, st) = evaluate(text, &[("CONT_IMG_VER", "v2.0.1")]);
    assert_eq!(st.get("CONT_IMG_VER").as_deref(), Some("v1.0.0"));
    let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nRUN echo $CONT_IMG_VER\n";
    let (_, st) = evaluate(text, &[("CONT_IMG_VER", "v2.0.1")]);
    assert_eq!(st.get("CONT_IMG_VER").as_deref(), Some("v2.0.1"));
    let (_, st) = evaluate(text, &[]);
    assert_eq!(st.get("CONT_IMG_VER").as_deref(), Some("v1.0.0"));
}

/// "Understand how ARG and FROM interact": global ARGs in FROM lines, and
/// `ARG VERSION` without a value importing the global one in a stage.
#[test]
fn arg_and_from_examples() {
    let df = p(
        "ARG  CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nCMD  /code/run-app\n\nFROM extras:${CODE_VERSION}\nCMD  /code/run-extras\n",
    );
    let mut global = ArgScope::new(BTreeMap::new());
    for a in &df.global_args {
        global.declare(&a.node, df.escape).unwrap();
    }
    let images: Vec<String> = df
        .stages
        .iter()
        .map(|s| {
            s.from
                .node
                .expanded(&global.lookup(), df.escape)
                .unwrap()
                .image
        })
        .collect();
    assert_eq!(images, ["base:latest", "extras:latest"]);

    let df = p(
        "ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nRUN echo $VERSION > image_version\n",
    );
    let mut global = ArgScope::new(BTreeMap::new());
    for a in &df.global_args {
        global.declare(&a.node, df.escape).unwrap();
    }
    let stage = &df.stages[0];
    assert_eq!(
        stage
            .from
            .node
            .expanded(&global.lookup(), '\\')
            .unwrap()
            .image,
        "busybox:latest"
    );
    let mut st = global.stage();
    assert_eq!(
        st.get("VERSION"),
        None,
        "globals are not visible in a stage"
    );
    let Instruction::Arg(decls) = &stage.instructions[0].node else {
        panic!()
    };
    st.declare(&decls[0], '\\').unwrap();
    assert_eq!(st.get("VERSION").as_deref(), Some("latest"));
}

/// "WORKDIR": only variables set in the Dockerfile are visible. The
/// reference says the `pwd` output is `/path/$DIRNAME`; BuildKit's lexer
/// (and this one) substitutes the empty string for an unset variable.
#[test]
fn workdir_example() {
    let (ins, _) = evaluate(
        "FROM x\nENV DIRPATH=/path\nWORKDIR $DIRPATH/$DIRNAME\nRUN pwd\n",
        &[],
    );
    assert_eq!(ins[1], Instruction::Workdir("/path/".to_string()));
}

/// "escape": the Windows example, with and without the directive.
#[test]
fn escape_directive_examples() {
    // With the default escape, `c:\\` ends in an escaped backslash, which
    // BuildKit has not treated as a continuation since moby/buildkit#1559
    // (the reference's output shows the older joined result). The RUN
    // line's `c:\` does continue, into the end of the file.
    let nodes = raw("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\\\nRUN dir c:\\\n");
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[1].args, s(&["testfile.txt", "c:\\\\"]));
    assert_eq!(nodes[2].args, s(&["dir c:"]));
    // With `# escape=`` the backslashes are plain characters.
    let text = "# escape=`\n\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n";
    let df = p(text);
    assert_eq!(df.escape, '`');
    let Instruction::Copy(c) = &df.stages[0].instructions[0].node else {
        panic!()
    };
    let c = match Instruction::Copy(c.clone()).expanded(&|_| None, df.escape) {
        Ok(Instruction::Copy(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!((c.sources, c.dest.as_str()), (s(&["testfile.txt"]), "c:\\"));
    let nodes = raw(text);
    assert_eq!(nodes[2].args, s(&["dir c:\\"]));
    // The SHELL section's PowerShell example.
    let nodes = raw(
        "# escape=`\n\nFROM microsoft/nanoserver\nSHELL [\"powershell\",\"-command\"]\nRUN New-Item -ItemType Directory C:\\Example\nADD Execute-MyCmdlet.ps1 c:\\example\\\nRUN c:\\example\\Execute-MyCmdlet -sample 'hello world'\n",
    );
    assert_eq!(nodes[1].args, s(&["powershell", "-command"]));
    assert!(nodes[1].json_form);
    assert_eq!(nodes[3].args, s(&["Execute-MyCmdlet.ps1", "c:\\example\\"]));
    assert_eq!(
        nodes[4].args,
        s(&["c:\\example\\Execute-MyCmdlet -sample 'hello world'"])
    );
}

/// "Parser directives": which lines are directives.
#[test]
fn parser_directive_examples() {
    // Whitespace and case do not matter.
    for d in [
        "#escape=`",
        "# escape =`",
        "#\tescape= `",
        "# escape = `",
        "#\t  eScApE=`",
    ] {
        assert_eq!(p(&format!("{d}\nFROM x\n")).escape, '`', "{d}");
    }
    // After an instruction, after a comment, or after an unknown
    // directive: a comment.
    assert_eq!(p("FROM x\n# escape=`\n").escape, '\\');
    assert_eq!(
        p("# About my dockerfile\n# escape=`\nFROM x\n").escape,
        '\\'
    );
    assert_eq!(
        p("# unknowndirective=value\n# syntax=value\nFROM x\n").syntax,
        None
    );
    // Not repeated.
    let e = parse("Dockerfile", "# escape=\\\n# escape=`\nFROM x\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 3));
}

/// "Format": comments and whitespace.
#[test]
fn comment_and_whitespace_examples() {
    let nodes =
        raw("FROM x\n        # this is a comment-line\n    RUN echo hello\nRUN echo world\n");
    assert_eq!(nodes[1].args, s(&["echo hello"]));
    assert_eq!(nodes[2].args, s(&["echo world"]));
    // Comment lines inside a continuation are removed.
    let nodes = raw("FROM x\nRUN echo hello \\\n# comment\nworld\n");
    assert_eq!(nodes[1].args, s(&["echo hello world"]));
    assert_eq!((nodes[1].line, nodes[1].end_line), (2, 4));
    // `#` elsewhere is an argument.
    let nodes = raw("FROM x\nRUN echo 'we are running some # of cool things'\n");
    assert_eq!(
        nodes[1].args,
        s(&["echo 'we are running some # of cool things'"])
    );
}

/// "Shell and exec form": JSON with escaped backslashes, and the
/// invalid-JSON fallback to shell form.
#[test]
fn exec_form_examples() {
    let nodes = raw(
        "FROM x\nENTRYPOINT [\"/bin/bash\", \"-c\", \"echo hello\"]\nRUN [\"c:\\\\windows\\\\system32\\\\tasklist.exe\"]\nRUN [\"c:\\windows\\system32\\tasklist.exe\"]\n",
    );
    assert!(nodes[1].json_form);
    assert_eq!(nodes[1].args, s(&["/bin/bash", "-c", "echo hello"]));
    assert!(nodes[2].json_form);
    assert_eq!(nodes[2].args, s(&["c:\\windows\\system32\\tasklist.exe"]));
    // `\w` is not a JSON escape: shell form.
    assert!(!nodes[3].json_form);
    assert_eq!(
        nodes[3].args,
        s(&["[\"c:\\windows\\system32\\tasklist.exe\"]"])
    );
}

/// "Here-Documents": every example of the section.
#[test]
fn heredoc_examples() {
    let nodes = raw(
        "# syntax=docker/dockerfile:1\nFROM debian\nRUN <<EOT bash\n  set -ex\n  apt-get update\n  apt-get install -y vim\nEOT\n",
    );
    assert_eq!(nodes[1].args, s(&["<<EOT bash"]));
    assert_eq!(
        nodes[1].heredocs[0].content,
        "  set -ex\n  apt-get update\n  apt-get install -y vim\n"
    );
    assert_eq!((nodes[1].line, nodes[1].end_line), (3, 7));

    let nodes =
        raw("FROM python:3.6\nRUN <<EOT\n#!/usr/bin/env python\nprint(\"hello world\")\nEOT\n");
    assert_eq!(
        nodes[1].heredocs[0].content,
        "#!/usr/bin/env python\nprint(\"hello world\")\n"
    );

    let nodes = raw(
        "FROM alpine\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\n",
    );
    let h: Vec<(&str, &str)> = nodes[1]
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    assert_eq!(h, [("FILE1", "I am\nfirst\n"), ("FILE2", "I am\nsecond\n")]);

    let df = p("FROM alpine\nCOPY <<EOF greeting.txt\nhello world\nEOF\n");
    let Instruction::Copy(c) = &df.stages[0].instructions[0].node else {
        panic!()
    };
    assert_eq!((c.sources.len(), c.dest.as_str()), (0, "greeting.txt"));
    assert_eq!(c.heredocs[0].content, "hello world\n");

    // `<<-EOT` expands (unquoted); `<<-"EOT"` does not. The body's leading
    // spaces are not tabs, so nothing is stripped.
    for (delim, expand, body) in [
        ("<<-EOT", true, "  echo \"hello bar\"\n"),
        ("<<-\"EOT\"", false, "  echo \"hello ${FOO}\"\n"),
    ] {
        let text = format!(
            "FROM alpine\nARG FOO=bar\nCOPY {delim} /script.sh\n  echo \"hello ${{FOO}}\"\nEOT\nENTRYPOINT ash /script.sh\n"
        );
        let nodes = raw(&text);
        let h = &nodes[2].heredocs[0];
        assert_eq!((h.expand, h.chomp), (expand, true));
        let (ins, _) = evaluate(&text, &[]);
        let Instruction::Copy(c) = &ins[1] else {
            panic!()
        };
        assert_eq!(c.heredocs[0].chomped(), body);
    }
}

/// "HEALTHCHECK" and "ONBUILD" examples.
#[test]
fn healthcheck_and_onbuild_examples() {
    let nodes = raw(
        "FROM x\nHEALTHCHECK --interval=5m --timeout=3s \\\n  CMD curl -f http://localhost/ || exit 1\nONBUILD ADD . /app/src\nONBUILD RUN /usr/local/bin/python-build --dir /app/src\n",
    );
    assert_eq!(nodes[1].flags, s(&["--interval=5m", "--timeout=3s"]));
    assert_eq!(
        nodes[1].args,
        s(&["CMD", "curl -f http://localhost/ || exit 1"])
    );
    let sub = nodes[2].subcommand.as_deref().unwrap();
    assert_eq!(
        (sub.instruction.as_str(), sub.args.clone()),
        ("ADD", s(&[".", "/app/src"]))
    );
    let sub = nodes[3].subcommand.as_deref().unwrap();
    assert_eq!(sub.args, s(&["/usr/local/bin/python-build --dir /app/src"]));
    // "ONBUILD limitations".
    let e = parse("Dockerfile", "FROM x\nONBUILD ONBUILD RUN x\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 9));
    let e = parse("Dockerfile", "FROM x\nONBUILD FROM y\n").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::OnbuildTrigger("FROM")), "{e}");
}

/// Error snippets: the caret sits under the offending text.
#[test]
fn error_columns_and_snippets() {
    let e = parse(
        "Dockerfile",
        "FROM a\nRUN echo \\\n  --x\nCOPY --chmode=1 a b\n",
    )
    .unwrap_err();
    assert_eq!((e.line, e.column, e.width), (4, 6, 8));
    assert_eq!(
        e.to_string(),
        "Dockerfile:4:6: unknown flag \"--chmode\" for COPY\n  |\n4 | COPY --chmode=1 a b\n  |      ^^^^^^^^"
    );
    // On a continuation line.
    let e = parse("Dockerfile", "FROM a\nENV A=1 \\\n    B\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 5));
    // Tabs are kept in the caret line so the caret lines up.
    let e = parse("Dockerfile", "FROM a\n\tFRB x\n").unwrap_err();
    assert!(e.to_string().ends_with("2 | \tFRB x\n  | \t^^^"), "{e}");
    // Whole-file errors have no location.
    let e = parse("Dockerfile", "# nothing\n").unwrap_err();
    assert_eq!((e.line, e.column, e.to_string().lines().count()), (0, 0, 1));
    // Errors made by the engine can be located afterwards.
    let text = "FROM a\nWORKDIR ${X:?needs X}\n";
    let kind = ErrorKind::Expand(ExpandError::MissingBrace);
    let e = Error::new("Dockerfile", 2, kind).locate_in(text, 2);
    assert_eq!((e.line, e.column, e.width), (2, 1, 7));
}
