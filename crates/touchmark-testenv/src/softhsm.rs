//! A throwaway SoftHSM2 token for one test: a token directory and a configuration file of its
//! own, so that runs never share state, removed when the [`Token`] is dropped.
//!
//! SoftHSM2 reads its configuration from `SOFTHSM2_CONF` once, when a process initialises the
//! module. A process-level test hands it to the program it starts ([`Token::env`]); an
//! in-process test runs itself again in a child process that has it ([`in_child`]), since a
//! test must not change its own process's environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The user PIN of every test token.
pub const PIN: &str = "87654321";
/// The security officer's PIN of every test token.
pub const SO_PIN: &str = "12345678";
/// The label of the token [`Token::create`] makes.
pub const LABEL: &str = "touchmark-test";

/// The variable through which [`in_child`] tells the child which test it runs.
const CHILD_VAR: &str = "TOUCHMARK_TEST_SOFTHSM_CHILD";

/// SoftHSM2's PKCS#11 module: `TOUCHMARK_TEST_SOFTHSM2_MODULE`, else where Debian and a source
/// build put it.
pub fn module() -> PathBuf {
    if let Some(path) = std::env::var_os("TOUCHMARK_TEST_SOFTHSM2_MODULE").filter(|v| !v.is_empty())
    {
        return PathBuf::from(path);
    }
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

/// A SoftHSM2 token directory with one initialised token, labelled [`LABEL`], user PIN
/// [`PIN`].
#[derive(Debug)]
pub struct Token {
    dir: PathBuf,
}

impl Token {
    /// Makes a token directory, its configuration file, a PIN file, and the token.
    ///
    /// # Panics
    /// When `softhsm2-util` cannot be run or fails: the test needs it.
    #[allow(clippy::panic)]
    pub fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "tm-softhsm-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", tokens.display()));
        let token = Token { dir };
        std::fs::write(
            token.conf(),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", token.conf().display()));
        std::fs::write(token.pin_file(), format!("{PIN}\n"))
            .unwrap_or_else(|e| panic!("cannot write the PIN file: {e}"));
        let util = crate::tool(&crate::SOFTHSM2_UTIL);
        let out = token
            .command(&util)
            .args([
                "--init-token",
                "--free",
                "--label",
                LABEL,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", util.display()));
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        token
    }

    /// The token directory's configuration file, for `SOFTHSM2_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// A file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.join("pin")
    }

    /// The directory that holds everything of this token.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The variables a program needs to see this token.
    pub fn env(&self) -> [(&'static str, PathBuf); 1] {
        [("SOFTHSM2_CONF", self.conf())]
    }

    /// `program`, with this token's variables set.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env());
        command
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// For an in-process test of a PKCS#11 token: in the test process, makes a [`Token`], runs
/// the test `name` (its full path in the test binary) again in a child process that sees the
/// token, checks that it ran and passed, and returns `None`; in that child, returns `Some`,
/// and the test goes on with the token.
///
/// # Panics
/// When the child fails, or did not run the test.
#[allow(clippy::panic)]
pub fn in_child(name: &str) -> Option<ChildToken> {
    if std::env::var(CHILD_VAR).is_ok_and(|v| v == name) {
        let conf = std::env::var_os("SOFTHSM2_CONF").map(PathBuf::from)?;
        let dir = conf.parent().map(Path::to_path_buf).unwrap_or_default();
        return Some(ChildToken { dir });
    }
    let token = Token::create();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary: {e}"));
    let out = token
        .command(&exe)
        .env(CHILD_VAR, name)
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed in its child:\n{text}");
    assert!(
        text.contains("1 passed"),
        "{name} did not run in its child (a wrong name?):\n{text}"
    );
    None
}

/// The token of a test running in [`in_child`]'s child process.
#[derive(Debug)]
pub struct ChildToken {
    dir: PathBuf,
}

impl ChildToken {
    /// A file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.join("pin")
    }

    /// The token directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration file (`SOFTHSM2_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// `program`, with this token's variables set.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.env("SOFTHSM2_CONF", self.conf());
        command
    }
}
