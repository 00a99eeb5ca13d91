//! The Markdown view of a plan, for a pull request comment: the counts, the cloud changes, and
//! each host's changes folded under its name. Built from the same plan value and step printers
//! as the human view, so it shows (and redacts) exactly what `infra plan` shows.

use infra_core::plan::Plan;
use std::io::{self, Write};

/// Writes the summary of `plan`.
pub fn write_plan(out: &mut impl Write, plan: &Plan) -> io::Result<()> {
    writeln!(out, "### `infra plan {}`\n", plan.environment)?;
    let mut summary = Vec::new();
    super::print_plan_summary(&mut summary, plan)?;
    let summary = String::from_utf8_lossy(&summary);
    let lines: Vec<&str> = summary.lines().filter(|l| !l.is_empty()).collect();
    writeln!(out, "{}\n", lines.join("  \n"))?;
    if let Some(cloud) = plan.cloud.as_ref().filter(|c| !c.changes.is_empty()) {
        let mut text = Vec::new();
        super::print_cloud(&mut text, cloud)?;
        writeln!(out, "#### Cloud ({})\n", cloud.region)?;
        fenced(out, &String::from_utf8_lossy(&text))?;
    }
    let changed: Vec<_> = plan.hosts.iter().filter(|h| !h.steps.is_empty()).collect();
    if !changed.is_empty() {
        writeln!(out, "#### Hosts\n")?;
    }
    for h in changed {
        let mut text = Vec::new();
        for step in &h.steps {
            super::print_step(&mut text, step)?;
        }
        let n = h.steps.len();
        writeln!(
            out,
            "<details><summary><code>{}</code>: {n} change{}</summary>\n",
            html(&h.host),
            if n == 1 { "" } else { "s" }
        )?;
        fenced(out, &String::from_utf8_lossy(&text))?;
        writeln!(out, "</details>\n")?;
    }
    if !plan.once.is_empty() {
        let mut text = Vec::new();
        super::print_once(&mut text, &plan.once)?;
        writeln!(out, "#### Once per environment\n")?;
        fenced(out, &String::from_utf8_lossy(&text))?;
    }
    Ok(())
}

/// `text` in a ```diff block whose fence is longer than any run of backticks inside it.
fn fenced(out: &mut impl Write, text: &str) -> io::Result<()> {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    writeln!(out, "{fence}diff\n{}\n{fence}\n", text.trim_matches('\n'))
}

/// Text safe inside HTML (the `<summary>` of a host).
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_outgrows_backticks() {
        let mut out = Vec::new();
        fenced(&mut out, "a ``````` b").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("````````diff\n"), "{text}");
        let mut out = Vec::new();
        fenced(&mut out, "plain").unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("```diff\n"));
    }

    #[test]
    fn host_names_are_escaped() {
        assert_eq!(html("a<b>&"), "a&lt;b&gt;&amp;");
    }
}
