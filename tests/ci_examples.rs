//! examples/ci: the GitHub Actions workflow's and the GitLab CI jobs' own shell steps, run for
//! real against two sandbox hosts (10.213.220.0/24): a pull request's plan (validated, planned
//! with --detailed-exitcode, saved, the JSON plan and the Markdown summary beside it, nothing
//! secret in them), the merge's apply of exactly that saved plan, and a clean plan after it.
//! GitHub's `uses:` actions cannot run here: the test checks they carry the files the shell
//! steps wrote. GitLab's API calls (the note, the merge request's artifacts) go to a small
//! stand-in of those two endpoints on loopback (tests/ci/gitlab_api.py). Needs root.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const SUBNET: &str = "10.213.220";
const CANARY: &str = "c4n4ry-t0k3n";

struct Lab {
    sandbox: Sandbox,
    site: SiteDir,
    /// The last byte of the jump host's address; the web host has the next one.
    first: u8,
}

/// Two hosts at SUBNET.first and SUBNET.first+1 (each test its own pair).
fn setup(first: u8) -> Lab {
    require_root();
    let site = SiteDir::new();
    site.write(
        "roles/motd.yaml",
        "name: motd\nsecrets: [token]\nfiles:\n  - {template: motd.j2, dest: /etc/motd.infra, mode: \"0644\"}\n  - {template: token.j2, dest: /etc/token.infra, mode: \"0600\"}\n",
    )
    .write(
        "templates/motd.j2",
        "{{ host.name }} round {{ vars.round }}\n",
    )
    .write("templates/token.j2", "token={{ secrets.token }}\n");
    std::fs::create_dir_all(site.path().join("ci")).unwrap();
    std::fs::copy(
        repo().join("examples/ci/infra-ci.sh"),
        site.path().join("ci/infra-ci.sh"),
    )
    .unwrap();
    let sandbox = site.up(SUBNET, &[("gw", first), ("web", first + 1)]);
    let lab = Lab {
        sandbox,
        site,
        first,
    };
    lab.round(1);
    lab
}

impl Lab {
    fn dir(&self) -> &Path {
        self.site.path()
    }

    fn round(&self, round: u32) {
        let text = format!(
            "{}  jump_host: gw\nvars: {{round: {round}}}\n{}",
            self.sandbox.inventory("production", "lab.test"),
            hosts_yaml(
                SUBNET,
                &[("gw", "motd", self.first), ("web", "motd", self.first + 1)]
            )
        );
        self.site.write("inventories/production.yaml", &text);
    }

    /// Runs `script` with bash -e in the site, with infra on PATH and `env` set.
    fn shell(&self, script: &str, env: &[(String, String)]) -> Run {
        let bin = Path::new(env!("CARGO_BIN_EXE_infra")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-e", "-c", script])
            .current_dir(self.dir())
            .env("PATH", path)
            .env("HOME", self.dir().join(".home"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run bash");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn host_file(&self, path: &str) -> String {
        let r = sandbox_exec(
            &self.dir().join(".infra/sandbox"),
            "web",
            &format!("cat {path}"),
        );
        r.assert_code(0);
        r.stdout
    }
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A `${{ ... }}` value of the workflow as the test's GitHub would give it.
fn expression(value: &str) -> String {
    match value.trim() {
        "${{ secrets.INFRA_SECRET_TOKEN }}" => CANARY.into(),
        "${{ secrets.INFRA_SSH_KEY }}" => String::new(),
        v if v.contains("${{") => panic!("the test does not know the expression {v}"),
        v => v.to_string(),
    }
}

fn env_of(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), expression(v.as_str().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the `run:` steps of GitHub job `job` in order; returns its `uses:` steps.
fn github_job(lab: &Lab, workflow: &Value, job: &str, outputs: &Path) -> Vec<Value> {
    let mut uses = Vec::new();
    for step in workflow["jobs"][job]["steps"].as_array().expect("steps") {
        let Some(run) = step["run"].as_str() else {
            uses.push(step.clone());
            continue;
        };
        assert!(!run.contains("${{"), "a run step with an expression: {run}");
        let mut env = env_of(&workflow["env"]);
        env.extend(env_of(&step["env"]));
        env.push((
            "GITHUB_OUTPUT".into(),
            outputs.join("output").display().to_string(),
        ));
        env.push((
            "GITHUB_STEP_SUMMARY".into(),
            outputs.join("summary").display().to_string(),
        ));
        let r = lab.shell(run, &env);
        assert_eq!(
            r.code, 0,
            "{job}: `{run}` failed:\n{}{}",
            r.stdout, r.stderr
        );
    }
    uses
}

fn action<'a>(uses: &'a [Value], name: &str) -> &'a Value {
    uses.iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} step"))
}

fn check_plan_files(lab: &Lab, changes: bool) {
    let md = std::fs::read_to_string(lab.dir().join("infra-plan/production.md")).unwrap();
    let json = std::fs::read_to_string(lab.dir().join("infra-plan/production.json")).unwrap();
    let saved = std::fs::read_to_string(lab.dir().join("infra-plan/production.plan")).unwrap();
    for text in [&md, &json, &saved] {
        assert!(!text.contains(CANARY), "a plan file shows the secret");
    }
    let plan: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["environment"], "production");
    assert_eq!(md.contains("<details>"), changes, "{md}");
    assert_eq!(md.contains("No changes."), !changes, "{md}");
}

#[test]
fn github_workflow_plans_a_pull_request_and_applies_it_on_merge() {
    let lab = setup(10);
    let workflow = yaml("examples/ci/github/infra.yml");
    let outputs = tempfile::tempdir().unwrap();
    let uses = github_job(&lab, &workflow, "plan", outputs.path());
    check_plan_files(&lab, true);
    let out = std::fs::read_to_string(outputs.path().join("output")).unwrap();
    assert!(out.contains("changes=true"), "{out}");
    let summary = std::fs::read_to_string(outputs.path().join("summary")).unwrap();
    assert!(summary.contains("### `infra plan production`"), "{summary}");
    assert_eq!(
        action(&uses, "actions/upload-artifact")["with"]["path"],
        "infra-plan/"
    );
    let comment = action(&uses, "marocchino/sticky-pull-request-comment");
    assert_eq!(comment["with"]["path"], "infra-plan/production.md");
    // Merged: the apply job's steps apply exactly the saved plan (the artifact, downloaded
    // into the same path), and the hosts hold the new files.
    let uses = github_job(&lab, &workflow, "apply", outputs.path());
    assert_eq!(
        action(&uses, "dawidd6/action-download-artifact")["with"]["path"],
        "infra-plan/"
    );
    assert_eq!(lab.host_file("/etc/motd.infra"), "web round 1\n");
    assert_eq!(
        lab.host_file("/etc/token.infra"),
        format!("token={CANARY}\n")
    );
    // The next pull request's plan is clean.
    let outputs = tempfile::tempdir().unwrap();
    github_job(&lab, &workflow, "plan", outputs.path());
    check_plan_files(&lab, false);
    let out = std::fs::read_to_string(outputs.path().join("output")).unwrap();
    assert!(out.contains("changes=false"), "{out}");
    // A saved plan whose site changed since is refused by the apply job, changing nothing.
    lab.round(2);
    let bad = lab.shell(
        "ci/infra-ci.sh apply",
        &[("INFRA_SECRET_TOKEN".into(), CANARY.into())],
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("the site changed since the plan was saved"),
        "{}",
        bad.stderr
    );
    assert_eq!(lab.host_file("/etc/motd.infra"), "web round 1\n");
}

/// The stand-in GitLab API: records notes, answers the merge request of a commit, serves the
/// plan job's artifacts as a zip of `dir`.
struct GitlabApi {
    child: Child,
    port: u16,
    notes: PathBuf,
}

impl GitlabApi {
    fn start(artifacts: &Path, notes: &Path) -> GitlabApi {
        let port = free_port();
        let child = Command::new("python3")
            .arg(repo().join("tests/ci/gitlab_api.py"))
            .arg(port.to_string())
            .arg(artifacts)
            .arg(notes)
            .spawn()
            .expect("start python3");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the stand-in API did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        GitlabApi {
            child,
            port,
            notes: notes.to_path_buf(),
        }
    }
}

impl Drop for GitlabApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gitlab_job(lab: &Lab, ci: &Value, job: &str, extra: &[(String, String)]) {
    let mut lines: Vec<String> = Vec::new();
    for part in [&ci["default"]["before_script"], &ci[job]["script"]] {
        for line in part.as_array().expect("script lines") {
            lines.push(line.as_str().unwrap().to_string());
        }
    }
    let mut env = env_of(&ci["variables"]);
    env.extend(extra.iter().cloned());
    let r = lab.shell(&lines.join("\n"), &env);
    assert_eq!(r.code, 0, "{job} failed:\n{}{}", r.stdout, r.stderr);
}

#[test]
fn gitlab_jobs_plan_a_merge_request_and_apply_it_on_merge() {
    let lab = setup(20);
    let ci = yaml("examples/ci/gitlab/gitlab-ci.yml");
    let scratch = tempfile::tempdir().unwrap();
    let api = GitlabApi::start(&lab.dir().join("infra-plan"), &scratch.path().join("notes"));
    let vars = vec![
        ("INFRA_NOTE_TOKEN".to_string(), "t0k".to_string()),
        ("INFRA_SECRET_TOKEN".into(), CANARY.into()),
        (
            "CI_API_V4_URL".into(),
            format!("http://127.0.0.1:{}/api/v4", api.port),
        ),
        ("CI_PROJECT_ID".into(), "42".into()),
        ("CI_MERGE_REQUEST_IID".into(), "7".into()),
        ("CI_COMMIT_SHA".into(), "0123abcd".into()),
    ];
    gitlab_job(&lab, &ci, "infra:plan", &vars);
    check_plan_files(&lab, true);
    let note = std::fs::read_to_string(&api.notes).expect("a note was posted");
    let note: Value = serde_json::from_str(&note).unwrap();
    let md = std::fs::read_to_string(lab.dir().join("infra-plan/production.md")).unwrap();
    assert_eq!(note["body"], md.as_str());
    // The merge commit's pipeline starts from a clean checkout: the plan comes from the API.
    let kept = scratch.path().join("kept");
    std::fs::rename(lab.dir().join("infra-plan"), &kept).unwrap();
    std::fs::create_dir(lab.dir().join("infra-plan")).unwrap();
    std::fs::rename(&kept, lab.dir().join("infra-plan/served")).unwrap();
    gitlab_job(&lab, &ci, "infra:apply", &vars);
    assert_eq!(lab.host_file("/etc/motd.infra"), "web round 1\n");
    assert_eq!(
        lab.host_file("/etc/token.infra"),
        format!("token={CANARY}\n")
    );
}
