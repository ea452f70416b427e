//! The demo on a terminal (issue 11, newcomer 5): run under a pseudo-terminal by `script`
//! (util-linux), its output is replayed on a small terminal model, and the screen it leaves
//! must show each line's progress bar at its total, once.

use std::process::Command;

use crate::kit;

/// The screen a stream of terminal output leaves: the text and the cursor movements that
/// indicatif and the demo use (CR, LF, CSI n A/B/C/D, CSI K and 2K, CSI J), with the
/// deferred wrap of a VT100 at `cols` columns. Other escape sequences are skipped.
struct Screen {
    cols: usize,
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

impl Screen {
    fn new(cols: usize) -> Self {
        Self {
            cols,
            rows: vec![Vec::new()],
            row: 0,
            col: 0,
        }
    }

    fn line(&mut self) -> &mut Vec<char> {
        while self.rows.len() <= self.row {
            self.rows.push(Vec::new());
        }
        &mut self.rows[self.row]
    }

    fn put(&mut self, c: char) {
        if self.col >= self.cols {
            self.row += 1;
            self.col = 0;
        }
        let col = self.col;
        let line = self.line();
        if line.len() <= col {
            line.resize(col + 1, ' ');
        }
        line[col] = c;
        self.col += 1;
    }

    fn feed(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => self.col = 0,
                '\n' => {
                    self.row += 1;
                    self.line();
                }
                '\x1b' => {
                    if chars.peek() != Some(&'[') {
                        chars.next();
                        continue;
                    }
                    chars.next();
                    let mut params = String::new();
                    let mut end = ' ';
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            end = c;
                            break;
                        }
                        params.push(c);
                    }
                    let n = params.trim_start_matches('?').parse::<usize>().unwrap_or(1);
                    match (end, params.as_str()) {
                        ('A', _) => self.row = self.row.saturating_sub(n),
                        ('B', _) => {
                            self.row += n;
                            self.line();
                        }
                        ('C', _) => self.col = (self.col + n).min(self.cols - 1),
                        ('D', _) => self.col = self.col.saturating_sub(n),
                        ('K', "2") => self.line().clear(),
                        ('K', _) => {
                            let col = self.col.min(self.cols);
                            self.line().truncate(col);
                        }
                        ('J', _) => {
                            let (row, col) = (self.row, self.col.min(self.cols));
                            self.line().truncate(col);
                            self.rows.truncate(row + 1);
                        }
                        _ => {}
                    }
                }
                c if c.is_control() => {}
                c => self.put(c),
            }
        }
    }

    fn text(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_owned())
            .collect()
    }
}

#[test]
fn screen_model_wraps_and_moves_like_a_terminal() {
    let mut screen = Screen::new(4);
    screen.feed("abcdefg\r\n12\x1b[1A\r\x1b[2Kxy\x1b[1B\rz");
    assert_eq!(screen.text(), ["abcd", "xy", "z2"]);
}

#[test]
#[cfg_attr(
    not(tm_script),
    ignore = "needs script (util-linux): install it, or set TOUCHMARK_TEST_SCRIPT"
)]
fn the_demo_s_progress_bars_reach_their_totals_on_a_terminal() {
    let work = tempfile::tempdir().unwrap();
    let transcript = work.path().join("typescript");
    let demo = format!(
        "stty cols 100 rows 50; exec '{}' demo --exit --data '{}'",
        kit::bin(),
        work.path().join("demo").display()
    );
    let script = touchmark_testenv::tool(&touchmark_testenv::SCRIPT);
    let out = Command::new(script)
        .args(["--quiet", "--flush", "--return", "--command", &demo])
        .arg(&transcript)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .env_remove("TOUCHMARK_KEY_PASSPHRASE_FILE")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let raw = std::fs::read(&transcript).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(out.status.success(), "the demo failed under script:\n{raw}");
    let mut screen = Screen::new(100);
    screen.feed(&raw);
    let text = screen.text();
    let shown = text.join("\n");
    for line in ["line-1", "line-2", "line-3"] {
        let bars: Vec<&String> = text
            .iter()
            .filter(|l| l.trim_start().starts_with(&format!("{line} [")))
            .collect();
        assert_eq!(bars.len(), 1, "{line} shows once:\n{shown}");
        assert!(
            bars[0].contains(" 208/208 ") && bars[0].contains("[==============================]"),
            "{line} reached its total:\n{shown}"
        );
    }
    assert!(
        shown.contains("every outcome as expected"),
        "the summary follows the bars:\n{shown}"
    );
}
