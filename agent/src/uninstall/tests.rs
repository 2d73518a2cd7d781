//! The uninstall step with real `/bin/sh` commands and real files: success,
//! failing exit codes, timeouts, no procedure (nothing runs), and a `store`
//! package's files removed before its command runs.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use sitecast_common::fragment::plan_reader;
use sitecast_common::info::{ActionDoc, Archive, InfoDoc, UninstallDoc};

use super::*;
use crate::manifest::Manifest;
use crate::unpack::{unpack, UnpackLimits};

fn info(action: ActionDoc, uninstall: Option<(&str, Vec<i32>)>, timeout_s: u64) -> Info {
    let plan = plan_reader(&b"payload"[..], 4).unwrap();
    Info::try_from(InfoDoc {
        schema: 1,
        id: "app-1.0-abc".into(),
        name: "app".into(),
        version: "1.0".into(),
        os: "any".into(),
        priority: 5,
        action,
        archive: "none".into(),
        size: plan.size(),
        sha256: hex::encode(plan.sha256()),
        fragment_size: 4,
        fragments: plan.fragments().iter().map(hex::encode).collect(),
        success_exit_codes: vec![0],
        command_timeout_s: timeout_s,
        notify: None,
        done_action_text: None,
        supersedes: None,
        uninstall: uninstall.map(|(command, success_exit_codes)| UninstallDoc {
            command: command.into(),
            success_exit_codes,
        }),
        issued_at: "2026-11-21T08:00:00Z".into(),
        restart: false,
    })
    .unwrap()
}

fn execute() -> ActionDoc {
    ActionDoc::Execute {
        command: "echo install".into(),
    }
}

fn store(path: &Path) -> ActionDoc {
    ActionDoc::Store {
        path: path.display().to_string(),
    }
}

struct Scene {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    work: PathBuf,
    computer: ComputerId,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        Scene {
            work: base.join("work"),
            base,
            _tmp: tmp,
            computer: "pc-1".parse().unwrap(),
        }
    }

    async fn uninstall(&self, info: &Info, installed: Option<&Installed>) -> StatusReport {
        let journal = Journal::new(self.base.join("running"));
        uninstall(info, installed, &self.work, &self.computer, &journal).await
    }

    /// A file the commands write to, to prove they ran (or did not).
    fn marker(&self) -> PathBuf {
        self.base.join("marker")
    }

    /// The work directory holds nothing once a step is over.
    fn work_is_clean(&self) -> bool {
        fs::read_dir(&self.work).map_or(true, |mut d| d.next().is_none())
    }

    /// A `store` install of a tar.gz into `path`, as the history would keep it.
    fn installed_store(&self, path: &Path) -> Installed {
        let package = self.base.join("package.tar.gz");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for name in ["bin/tool", "share/readme"] {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_size(4);
            builder
                .append_data(&mut header, name, &b"data"[..])
                .unwrap();
        }
        fs::write(&package, builder.into_inner().unwrap().finish().unwrap()).unwrap();
        let unpacked = unpack(
            Archive::TarGz,
            &package,
            path,
            "unused",
            &UnpackLimits::default(),
            None,
        )
        .unwrap();
        Installed {
            at: jiff::Timestamp::UNIX_EPOCH,
            store: Some(unpacked.manifest),
        }
    }
}

#[tokio::test]
async fn the_command_runs_in_a_fresh_empty_directory_and_success_codes_apply() {
    let scene = Scene::new();
    let command = format!(
        r#"echo "files=$(ls -A | wc -l) id=$SITECAST_PACKAGE_ID dir=$SITECAST_PACKAGE_DIR" > {marker}; pwd -P; exit 3"#,
        marker = scene.marker().display()
    );
    let info = info(execute(), Some((&command, vec![0, 3])), 60);
    let report = scene.uninstall(&info, None).await;
    assert_eq!(report.code, StatusCode::Success, "{report:?}");
    assert_eq!(report.exit_code, Some(3));
    let ran = fs::read_to_string(scene.marker()).unwrap();
    let cwd = report.output.unwrap();
    let cwd = cwd.trim();
    assert!(cwd.starts_with(&scene.work.display().to_string()), "{cwd}");
    assert_eq!(ran, format!("files=0 id=app-1.0-abc dir={cwd}\n"));
    // The working directory is gone afterwards.
    assert!(!Path::new(cwd).exists());
    assert!(scene.work_is_clean());
}

#[tokio::test]
async fn an_exit_code_outside_the_success_codes_is_err_exit_code() {
    let scene = Scene::new();
    let info = info(execute(), Some(("echo bye; exit 4", vec![0, 3010])), 60);
    let report = scene.uninstall(&info, None).await;
    assert_eq!(report.code, StatusCode::ErrExitCode);
    assert_eq!(report.exit_code, Some(4));
    assert_eq!(report.output.as_deref(), Some("bye\n"));
    assert!(scene.work_is_clean());
}

#[tokio::test]
async fn a_command_past_the_timeout_is_killed_and_err_timeout() {
    let scene = Scene::new();
    let info = info(execute(), Some(("echo started; sleep 30", vec![0])), 1);
    let started = Instant::now();
    let report = scene.uninstall(&info, None).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.code, StatusCode::ErrTimeout);
    assert_eq!(report.exit_code, None);
    let output = report.output.unwrap();
    assert!(output.starts_with("started\n"), "{output}");
    assert!(output.ends_with("[sitecast: killed after 1 s]"), "{output}");
    assert!(scene.work_is_clean());
}

#[tokio::test]
async fn no_procedure_is_err_execute_and_nothing_runs() {
    let scene = Scene::new();
    // The install command would leave a trace if anything ran it.
    let action = ActionDoc::Execute {
        command: format!("touch {}", scene.marker().display()),
    };
    let report = scene.uninstall(&info(action, None, 60), None).await;
    assert_eq!(report.code, StatusCode::ErrExecute);
    let output = report.output.unwrap();
    assert!(output.contains("has no uninstall procedure"), "{output}");
    assert!(output.contains("action is execute"), "{output}");
    assert!(!scene.marker().exists());
    assert!(!scene.work.exists(), "no working directory was even made");
}

#[tokio::test]
async fn a_working_directory_that_cannot_be_made_is_err_execute() {
    let scene = Scene::new();
    fs::write(&scene.work, "a file where the work directory goes").unwrap();
    let command = format!("touch {}", scene.marker().display());
    let report = scene
        .uninstall(&info(execute(), Some((&command, vec![0])), 60), None)
        .await;
    assert_eq!(report.code, StatusCode::ErrExecute);
    assert!(report
        .output
        .unwrap()
        .contains("cannot create the uninstall command's working directory"));
    assert!(!scene.marker().exists());
}

#[tokio::test]
async fn a_store_package_is_removed_then_its_command_runs() {
    let scene = Scene::new();
    let path = scene.base.join("opt/app");
    let installed = scene.installed_store(&path);
    // The command runs after the files are gone.
    let command = format!(
        "test -e {path}/bin/tool && exit 9; echo done > {marker}",
        path = path.display(),
        marker = scene.marker().display()
    );
    let info = info(store(&path), Some((&command, vec![0])), 60);
    let report = scene.uninstall(&info, Some(&installed)).await;
    assert_eq!(report.code, StatusCode::Success, "{report:?}");
    assert!(!path.exists());
    assert!(scene.base.join("opt").is_dir());
    assert_eq!(fs::read_to_string(scene.marker()).unwrap(), "done\n");
    let output = report.output.unwrap();
    assert!(
        output.starts_with(&format!(
            "{}: removed 2 files or symlinks and 3 directories",
            path.display()
        )),
        "{output}"
    );
    assert!(scene.work_is_clean());
}

#[tokio::test]
async fn a_store_package_without_a_command_only_removes_its_files() {
    let scene = Scene::new();
    let path = scene.base.join("store");
    fs::create_dir_all(path.join("share")).unwrap();
    fs::write(path.join("share/theirs"), "x").unwrap();
    let installed = scene.installed_store(&path);
    let report = scene
        .uninstall(&info(store(&path), None, 60), Some(&installed))
        .await;
    assert_eq!(report.code, StatusCode::Success, "{report:?}");
    assert!(path.join("share/theirs").exists());
    assert!(!path.join("bin").exists());
    assert!(!path.join("share/readme").exists());
    assert!(!scene.work.exists(), "no command, no working directory");
}

#[tokio::test]
async fn a_store_package_this_agent_never_installed_has_nothing_to_remove() {
    let scene = Scene::new();
    let path = scene.base.join("store");
    fs::create_dir_all(&path).unwrap();
    fs::write(path.join("file"), "x").unwrap();
    let report = scene.uninstall(&info(store(&path), None, 60), None).await;
    assert_eq!(report.code, StatusCode::Success);
    assert!(report.output.unwrap().contains("nothing to remove"));
    assert!(path.join("file").exists());
}

#[tokio::test]
async fn a_store_install_without_a_manifest_is_err_execute_and_nothing_runs() {
    let scene = Scene::new();
    let path = scene.base.join("store");
    fs::create_dir_all(&path).unwrap();
    fs::write(path.join("file"), "x").unwrap();
    let legacy = Installed {
        at: jiff::Timestamp::UNIX_EPOCH,
        store: None,
    };
    let command = format!("touch {}", scene.marker().display());
    let info = info(store(&path), Some((&command, vec![0])), 60);
    let report = scene.uninstall(&info, Some(&legacy)).await;
    assert_eq!(report.code, StatusCode::ErrExecute);
    assert!(report.output.unwrap().contains("nothing was removed"));
    assert!(path.join("file").exists());
    assert!(!scene.marker().exists());
}

#[tokio::test]
async fn files_that_cannot_be_removed_are_err_execute_and_the_command_does_not_run() {
    let scene = Scene::new();
    let path = scene.base.join("store");
    let victim = scene.base.join("victim");
    fs::write(&victim, "keep").unwrap();
    let mut manifest = Manifest::new(&path, None);
    manifest.entries.push(crate::manifest::Entry {
        kind: crate::manifest::EntryKind::File,
        path: "../victim".into(),
        ino: 1,
    });
    let installed = Installed {
        at: jiff::Timestamp::UNIX_EPOCH,
        store: Some(manifest),
    };
    let command = format!("touch {}", scene.marker().display());
    let info = info(store(&path), Some((&command, vec![0])), 60);
    let report = scene.uninstall(&info, Some(&installed)).await;
    assert_eq!(report.code, StatusCode::ErrExecute);
    let output = report.output.unwrap();
    assert!(
        output.contains("could not remove what the install put in"),
        "{output}"
    );
    assert!(output.contains("not run"), "{output}");
    assert!(!scene.marker().exists());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
}

#[test]
fn the_summary_and_the_output_fit_the_report() {
    let tail = "x".repeat(OUTPUT_TAIL_BYTES);
    let joined = join_output("removed 1", &tail);
    assert_eq!(joined.len(), OUTPUT_TAIL_BYTES);
    assert!(joined.starts_with("removed 1\nxxx"));
    assert_eq!(join_output("removed 1", "ok\n"), "removed 1\nok\n");
    let long = "é".repeat(OUTPUT_TAIL_BYTES);
    let joined = join_output(&long, "ok");
    assert!(joined.len() <= OUTPUT_TAIL_BYTES);
}
