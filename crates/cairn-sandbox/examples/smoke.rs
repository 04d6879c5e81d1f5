//! Manual smoke test: `cargo run -p cairn-sandbox --example smoke -- /path/to/lower`.
use cairn_sandbox::*;
use std::path::PathBuf;

fn main() {
    init_if_helper();
    let ns = userns::enter_build_namespace().expect("userns");
    eprintln!(
        "in namespace: uid={} plan={:?}",
        rustix::process::getuid().as_raw(),
        ns.plan.method
    );
    let lower = PathBuf::from(std::env::args().nth(1).expect("lower dir"));
    let dir = tempfile::tempdir().unwrap();
    let spec = StepSpec {
        lowers: vec![lower],
        dirs: StepDirs::under(dir.path()),
        hostname: "smoke".into(),
        network: Network::Host,
        context: None,
        action: Action::Exec(ExecSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                std::env::args().nth(2).unwrap_or(
                    "id; ls /; echo $$; cat /etc/hosts; echo hi > /x; rm /bin/cat; ps".into(),
                ),
            ],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
        }),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(run_step(&spec, &|s, l| eprintln!("[{s:?}] {l}")));
    eprintln!("outcome: {out:?}");
    for e in walk(&spec.dirs.upper) {
        eprintln!("upper: {e}");
    }
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut v = vec![];
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        v.push(format!(
            "{} {:?}",
            e.path().display(),
            e.file_type().unwrap()
        ));
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()));
        }
    }
    v
}
