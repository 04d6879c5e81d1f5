//! Issue 3 end to end: a multi-stage Dockerfile with heredocs, cache/secret/bind/
//! tmpfs mounts, ONBUILD, --chown/--chmod, ADD of archives and of an https URL,
//! .dockerignore, --target and --build-arg, pushed and checked with skopeo/umoci.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::isolation::{owner_of, tar_listing};
use crate::support::*;

/// A local HTTPS server (python3's http.server) with a certificate signed by a CA
/// the test makes; killed on drop.
struct HttpsServer {
    child: Child,
    port: u16,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVER: &str = r#"
import http.server, ssl, sys, functools
root, cert, key = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
class Quiet(handler.func):
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").current_dir(dir).args(args));
}

/// Makes `ca.pem` and a server certificate for 127.0.0.1 signed by it, then serves `root`.
fn https_server(dir: &Path, root: &Path) -> HttpsServer {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cairn test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SERVER)
        .arg(root)
        .arg(dir.join("srv.pem"))
        .arg(dir.join("srv.key"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    HttpsServer {
        port: line.trim().parse().expect("server port"),
        child,
    }
}

fn sh(cmd: &str) {
    run_ok(Command::new("sh").arg("-c").arg(cmd));
}

fn sha256_hex(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), data).unwrap();
    String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
}

/// Seconds of the log line containing `needle` (`[  1.234s] …`).
fn at(log: &str, needle: &str) -> f64 {
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in the log:\n{log}"));
    line.trim_start_matches('[')
        .split('s')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no timestamp in {line:?}"))
}

#[test]
fn multi_stage_dockerfile_with_every_feature() {
    let env = Env::new();
    let ctx = env.path("ctx");
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(testdata("acceptance/frontend"))
            .arg(&ctx),
    );
    // Archives for ADD: one tree, three compressions; and a gzip of a non-tar.
    let arc = env.path("arc");
    std::fs::create_dir_all(arc.join("inner")).unwrap();
    std::fs::write(arc.join("inner/inner.txt"), "inner file\n").unwrap();
    let owner = if is_root() {
        "--owner=4321 --group=4321"
    } else {
        ""
    };
    for (ext, z) in [("gz", "gzip"), ("xz", "xz"), ("bz2", "bzip2")] {
        sh(&format!(
            "tar --numeric-owner {owner} -C {} -cf - inner | {z} > {}/archive.tar.{ext}",
            arc.display(),
            ctx.display()
        ));
    }
    sh(&format!(
        "echo 'just text' | gzip > {}/plain.txt.gz",
        ctx.display()
    ));

    // An image with ONBUILD triggers, pushed first.
    let onbuild = env.image("onbuild/base:v1");
    run_ok(build_cmd(&env, "onbuild", &env.path("state-onbuild")).args(["-t", &onbuild, "--push"]));

    // The https source of ADD.
    let www = env.path("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("downloaded.txt"), "served over https\n").unwrap();
    let server = https_server(env.tmp.path(), &www);
    let url = format!("https://127.0.0.1:{}/downloaded.txt", server.port);
    let url_sum = format!("sha256:{}", sha256_hex(b"served over https\n"));

    let token = "s3cr3t-token-value-7f1c9e";
    let image = env.image("frontend/final:v1");
    let state = env.path("state");
    let build = |tag: &str| {
        let mut c = Command::new(cairn_bin());
        c.arg("build")
            .arg("-f")
            .arg(ctx.join("Dockerfile"))
            .arg(&ctx)
            .args(["--target", "final"])
            .args(["--build-arg", &format!("BASE={}", env.base)])
            .args(["--build-arg", &format!("ONBUILD_BASE={onbuild}")])
            .args(["--build-arg", "FLAVOUR=spicy"])
            .args(["--build-arg", &format!("URL={url}")])
            .args(["--build-arg", &format!("URL_SUM={url_sum}")])
            .args(["--secret", "id=token,env=CAIRN_TEST_TOKEN"])
            .arg("--ca-cert")
            .arg(env.tmp.path().join("ca.pem"))
            .args(["-t", tag, "--push", "--state-dir"])
            .arg(&state)
            .env("CAIRN_TEST_TOKEN", token);
        run(&mut c)
    };
    let out = build(&image);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "build failed:\n{log}");

    // Independent stages ran at the same time; unneeded stages did not run.
    let (l0, l1) = (at(&log, "[left 1/1]"), at(&log, "[left] done"));
    let (r0, r1) = (at(&log, "[right 1/1]"), at(&log, "[right] done"));
    assert!(
        l0 < r1 && r0 < l1,
        "left {l0}..{l1} and right {r0}..{r1} did not overlap:\n{log}"
    );
    assert!(!log.contains("[unused") && !log.contains("[after"), "{log}");

    // Config fields.
    // --raw: the config blob as written (skopeo's OCI view drops Docker fields such as Healthcheck).
    let config = skopeo_json(&[
        "inspect",
        "--raw",
        "--config",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]);
    let cfg = &config["config"];
    assert_eq!(cfg["Labels"]["flavour"], "spicy");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some(), "{cfg:#}");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "true"])
    );
    assert_eq!(cfg["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(cfg["Healthcheck"]["Retries"], 3);
    assert_eq!(cfg["Cmd"], serde_json::json!(["sh"]));
    assert!(
        cfg.get("OnBuild")
            .is_none_or(|v| v.as_array().is_none_or(|a| a.is_empty()))
    );

    // Files, modes and owners, read by tools cairn did not write.
    let work = env.path("check");
    let root = unpack_with_umoci(&image, &work);
    let layout = work.join("layout");
    let listing = tar_listing(&layout);
    assert_eq!(owner_of(&listing, "app/a.txt"), "1234/2345", "{listing}");
    let mode = listing.lines().find(|l| l.ends_with(" app/a.txt")).unwrap();
    assert!(mode.starts_with("-rw-r-----"), "{mode}");
    assert_eq!(read(&root.join("app/sub/b.txt")), "file b\n");
    // --parents keeps the sources' paths.
    assert_eq!(read(&root.join("parents/files/sub/b.txt")), "file b\n");
    assert_eq!(read(&root.join("parents/files/a.txt")), "file a\n");
    assert!(
        !root.join("app/ignored.txt").exists(),
        ".dockerignore not honoured"
    );
    assert_eq!(read(&root.join("stages/left.txt")), "left\n");
    assert_eq!(read(&root.join("stages/right.txt")), "right\n");
    assert_eq!(read(&root.join("stages/onbuild-ran")), "trigger ran\n");
    assert_eq!(read(&root.join("stages/from-onbuild.txt")), "file a\n");
    assert_eq!(read(&root.join("etc/heredoc.conf")), "flavour=spicy\n");
    assert_eq!(read(&root.join("run-heredoc.txt")), "run heredoc spicy\n");
    assert_eq!(read(&root.join("shebang.txt")), "shebang\n");
    assert_eq!(read(&root.join("cache-count.txt")), "1\n");
    assert_eq!(
        read(&root.join("secret.sha")).trim(),
        sha256_hex(token.as_bytes())
    );
    assert_eq!(read(&root.join("bound-left.txt")), "left\n");
    assert_eq!(read(&root.join("bound-ctx.txt")), "file a\n");
    assert!(root.join("tmpfs-ok").exists());
    assert!(
        !root.join("scratch/t").exists(),
        "tmpfs content leaked into a layer"
    );
    assert!(
        !root.join("run/secrets/token").exists(),
        "secret mount point leaked"
    );
    for kind in ["gz", "xz", "bz2"] {
        assert_eq!(
            read(&root.join(format!("unpacked/{kind}/inner/inner.txt"))),
            "inner file\n"
        );
        if is_root() {
            assert_eq!(
                owner_of(&listing, &format!("unpacked/{kind}/inner/inner.txt")),
                "4321/4321"
            );
        }
    }
    assert!(
        root.join("notunpacked/plain.txt.gz").is_file(),
        "a gzip of a non-tar must stay a file"
    );
    assert_eq!(
        read(&root.join("downloaded/downloaded.txt")),
        "served over https\n"
    );

    // The secret is in no blob: every layer (decompressed) and the config.
    for e in std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let raw = std::fs::read(e.path()).unwrap();
        let mut data = Vec::new();
        if flate2_gunzip(&raw, &mut data).is_err() {
            data = raw;
        }
        assert!(
            !data.windows(token.len()).any(|w| w == token.as_bytes()),
            "secret found in blob {}",
            e.path().display()
        );
    }

    // The cache mount persists between builds (same state dir).
    let again = env.image("frontend/final:v2");
    let out = build(&again);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root2 = unpack_with_umoci(&again, &env.path("check2"));
    assert_eq!(read(&root2.join("cache-count.txt")), "2\n");
}

fn flate2_gunzip(raw: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    if raw.len() < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
        return Err(std::io::Error::other("not gzip"));
    }
    let mut c = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = c.stdin.take().unwrap();
    let raw = raw.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &raw));
    c.stdout.take().unwrap().read_to_end(out)?;
    let _ = writer.join();
    c.wait()?;
    Ok(())
}
