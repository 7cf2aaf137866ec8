//! One S3-compatible server (s3s-fs) per test binary on 127.0.0.1, storing
//! objects as plain files under a temp folder, so tests can look at them. A
//! watcher stops it when the test process ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const ACCESS_KEY: &str = "pgbarge-test";
pub const SECRET_KEY: &str = "S3-secret-Zz9-do-not-print";

pub struct S3Server {
    pub root: PathBuf,
    pub port: u16,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();

/// The server, started on first use.
pub fn s3() -> &'static S3Server {
    SERVER.get_or_init(start)
}

/// `cargo install` puts it in `$CARGO_HOME/bin` (default `~/.cargo/bin`),
/// which may not be on PATH.
fn binary() -> PathBuf {
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let installed = cargo_home.join("bin/s3s-fs");
    if installed.exists() { installed } else { PathBuf::from("s3s-fs") }
}

fn start() -> S3Server {
    let root = std::env::temp_dir().join(format!("pgbarge-s3-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The server dies with this process: a shell waits for it, then kills it.
    let script = r#""$BIN" --host 127.0.0.1 --port "$PORT" --access-key "$AK" --secret-key "$SK" "$ROOT" >/dev/null 2>&1 & s=$!; while kill -0 "$PARENT" 2>/dev/null; do sleep 0.5; done; kill $s; rm -rf "$ROOT""#;
    // Never waited for: it outlives the tests on purpose and ends itself.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", script])
        .env("BIN", binary())
        .env("PORT", port.to_string())
        .env("AK", ACCESS_KEY)
        .env("SK", SECRET_KEY)
        .env("ROOT", &root)
        .env("PARENT", std::process::id().to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("start s3s-fs (scripts/install-deps.sh installs it)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return S3Server { root, port };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("s3s-fs did not start on port {port}; is it installed (scripts/install-deps.sh)?");
}

impl S3Server {
    /// A new bucket for one test.
    pub fn bucket(&self, name: &str) -> String {
        std::fs::create_dir_all(self.root.join(name)).unwrap();
        name.to_string()
    }

    /// The environment pgbarge reads.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}
