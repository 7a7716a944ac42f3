//! Per-pack Python virtualenvs: `<virtualenvs_dir>/<pack>`, used to run the pack's Python actions
//! and sensors.
//!
//! Like StackStorm, a virtualenv is (re)created from scratch with `--system-site-packages` and the
//! pack's `requirements.txt` is installed into it. Unlike StackStorm we do not install `six` (no
//! network access is needed for a pack without requirements) and we create the virtualenv with
//! `<python> -m venv` rather than the `virtualenv` tool. Speed: the virtualenv is created
//! `--without-pip` (a fraction of a second instead of several seconds); when there are
//! requirements, the virtualenv's interpreter runs the pip visible through the system
//! site-packages (it installs into the virtualenv), and `ensurepip` bootstraps one only if there
//! is none. This module runs blocking processes; call it from `spawn_blocking` in async
//! code. It never touches the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{PackError, PackPaths};

/// Creates (or re-creates) the virtualenv of `pack_ref` and installs `<pack_dir>/requirements.txt`
/// into it when that file has any requirement line. Returns the virtualenv directory.
pub fn setup_virtualenv(
    paths: &PackPaths,
    pack_ref: &str,
    pack_dir: &Path,
    python: &str,
) -> Result<PathBuf, PackError> {
    let venv = paths.virtualenv(pack_ref);
    let err = |reason: String| PackError::Virtualenv {
        pack: pack_ref.to_string(),
        reason,
    };
    remove_dir(&venv)?;
    std::fs::create_dir_all(&paths.virtualenvs_dir).map_err(|e| PackError::Io {
        path: paths.virtualenvs_dir.clone(),
        source: e,
    })?;

    let requirements = pack_dir.join("requirements.txt");
    let has_requirements = has_requirements(&requirements)?;

    // `--without-pip` keeps creation fast; pip is found or bootstrapped below when needed.
    let mut create = Command::new(python);
    create
        .args(["-m", "venv", "--system-site-packages", "--without-pip"])
        .arg(&venv);
    run(&mut create, python).map_err(|e| err(format!("cannot create {}: {e}", venv.display())))?;

    let venv_python = venv_python(&venv);
    if !venv_python.exists() {
        return Err(err(format!("{} was not created", venv_python.display())));
    }
    if has_requirements {
        let shown = venv_python.display().to_string();
        let pip_available = run(
            Command::new(&venv_python).args(["-c", "import pip"]),
            &shown,
        )
        .is_ok();
        if !pip_available {
            run(
                Command::new(&venv_python).args(["-m", "ensurepip", "--default-pip"]),
                &shown,
            )
            .map_err(|e| err(format!("cannot bootstrap pip: {e}")))?;
        }
        let mut pip = Command::new(&venv_python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
        ])
        .arg(&requirements)
        .current_dir(pack_dir);
        run(&mut pip, &shown)
            .map_err(|e| err(format!("installing requirements.txt failed: {e}")))?;
    }
    tracing::info!(pack = pack_ref, venv = %venv.display(), requirements = has_requirements, "virtualenv ready");
    Ok(venv)
}

/// Deletes the virtualenv of `pack_ref`; true if there was one.
pub fn remove_virtualenv(paths: &PackPaths, pack_ref: &str) -> Result<bool, PackError> {
    let venv = paths.virtualenv(pack_ref);
    let existed = venv.exists();
    remove_dir(&venv)?;
    Ok(existed)
}

/// The interpreter inside a virtualenv.
pub fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// True when the file exists and has a line that is neither blank nor a comment.
fn has_requirements(file: &Path) -> Result<bool, PackError> {
    if !file.is_file() {
        return Ok(false);
    }
    let text = std::fs::read_to_string(file).map_err(|e| PackError::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with('#')))
}

fn remove_dir(dir: &Path) -> Result<(), PackError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PackError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// Runs a command; on failure, the error carries its exit status and stderr (or stdout when
/// stderr is empty — pip prints some errors there).
fn run(cmd: &mut Command, shown: &str) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        stderr
    };
    Err(format!(
        "{shown} exited with {}: {}",
        out.status,
        text.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let f = tmp.path().join("requirements.txt");
        assert!(!has_requirements(&f).expect("absent"));
        for (text, want) in [
            ("", false),
            ("\n  \n# just a comment\n", false),
            ("# c\nrequests>=2\n", true),
            ("--no-index\n", true),
        ] {
            std::fs::write(&f, text).expect("write");
            assert_eq!(has_requirements(&f).expect("read"), want, "{text:?}");
        }
    }

    #[test]
    fn failing_commands_report_stderr() {
        let err = run(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "sh",
        )
        .expect_err("fails");
        assert!(err.contains("boom") && err.contains('3'), "{err}");
        let err = run(
            &mut Command::new("/nonexistent/python"),
            "/nonexistent/python",
        )
        .expect_err("missing");
        assert!(err.contains("cannot run /nonexistent/python"), "{err}");
    }
}
