//! Running an official client's scenario script (`tests/sdk/*.py`) against
//! an emulator, with the interpreter in `VECPORT_PYTHON` (default `python3`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A scenario: which script, what it needs, and its environment.
pub struct Scenario<'a> {
    /// Script under `tests/sdk/`.
    pub script: &'a str,
    /// Python modules it imports (e.g. `qdrant_client, numpy`).
    pub imports: &'a str,
    /// The pinned package, for messages (`qdrant-client==1.20.0`).
    pub package: &'a str,
    /// Environment variables for the script.
    pub env: Vec<(&'a str, String)>,
    /// The variable naming the file the script writes its JSON summary to.
    pub summary_env: &'a str,
}

fn python() -> String {
    std::env::var("VECPORT_PYTHON")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Runs the scenario and returns its JSON summary. `None` (skipped) when the
/// interpreter cannot import what it needs, except under CI (`CI=true`),
/// where that is a failure; panics when the scenario fails.
pub async fn run_scenario(s: Scenario<'_>) -> Option<Value> {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", &format!("import {}", s.imports)])
        .output();
    let missing = match probe {
        Err(e) => Some(e.to_string()),
        Ok(out) if !out.status.success() => Some(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned(),
        ),
        Ok(_) => None,
    };
    if let Some(why) = missing {
        let help = format!(
            "set VECPORT_PYTHON to an interpreter with {} (tests/servers.sh installs it)",
            s.package
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "`{python}` cannot import {} ({why}), but CI=true: {help}",
                s.imports
            );
        }
        eprintln!(
            "skipped: `{python}` cannot import {} ({why}); {help}",
            s.imports
        );
        return None;
    }
    let summary = tempfile::NamedTempFile::new().expect("temp file for the SDK summary");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(s.script);
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .env(s.summary_env, summary.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8");
    for (k, v) in &s.env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("SDK scenario thread")
        .expect("run the SDK scenario");
    assert!(
        out.status.success(),
        "tests/sdk/{} failed ({}):\n{}",
        s.script,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(summary.path()).expect("read the SDK summary");
    Some(serde_json::from_str(&text).expect("the SDK summary is JSON"))
}
