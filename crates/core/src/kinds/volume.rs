//! Volumes: a cloud block device formatted only when it holds no filesystem, then mounted by
//! UUID from fstab. Facts: what is mounted at each volume's mount point.

use super::{BadLine, Kind, Planner, ScriptError, Writer};
use crate::desired::DesiredHost;
use crate::shell::{n, w, Script};
use crate::state::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: Action,
    pub device: String,
    pub fs: String,
    pub mount: String,
}

/// Mount point -> source device, for the volumes' mount points that are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub mounts: BTreeMap<String, String>,
}

impl Kind for Step {
    fn probe(desired: &DesiredHost, s: &mut Script) {
        for v in &desired.volumes {
            s.line(
                "findmnt -n -o SOURCE --mountpoint {} 2>/dev/null | while read -r d; do printf 'mount\\t%s\\t%s\\n' {} \"$d\"; done",
                &[w(&v.mount), w(&v.mount)],
            );
        }
    }

    fn parse(fields: &[&str], facts: &mut super::Facts) -> Option<Result<(), BadLine>> {
        let ["mount", point, device] = fields else {
            return None;
        };
        let mounts = &mut facts.volume.mounts;
        mounts.insert(point.to_string(), device.to_string());
        Some(Ok(()))
    }

    fn plan_host(p: &mut Planner) {
        for v in &p.desired.volumes {
            if !p.facts.volume.mounts.contains_key(&v.mount) {
                p.steps.push(
                    Step {
                        action: Action::Create,
                        device: v.device.clone(),
                        fs: v.fs.clone(),
                        mount: v.mount.clone(),
                    }
                    .into(),
                );
            }
        }
    }

    fn address(&self) -> String {
        format!("volume {}", self.mount)
    }

    /// Waits for the attachment to show; formats only a device without a filesystem, and then
    /// carries over what the mount point already held (data of a package installed before the
    /// volume came); mounts by UUID from fstab (nofail: the host still boots without it).
    fn script(&self, i: usize, _w: &mut Writer, s: &mut Script) -> Result<(), ScriptError> {
        let (d, f, m, i) = (w(&self.device), w(&self.fs), w(&self.mount), n(i));
        s.line("dev={}; n=0; while [ ! -b \"$dev\" ] && [ $n -lt 120 ]; do sleep 1; n=$((n+1)); done", &[d])
            .line("if [ ! -b \"$dev\" ]; then echo \"no block device $dev: is the volume attached?\" > \"$log\"; fail {} 1; fi", &[i])
            .raw("if ! blkid -o value -s TYPE \"$dev\" >/dev/null 2>&1; then\n")
            .line("  mkfs -t {} -q \"$dev\" > \"$log\" 2>&1 || fail {}", &[f, i])
            .line("  if [ -d {} ] && [ -n \"$(ls -A {})\" ]; then", &[m, m])
            .line("    t=$(mktemp -d) && mount -t {} \"$dev\" \"$t\" && cp -a {}/. \"$t\"/ && umount \"$t\" && rmdir \"$t\" || fail {}", &[f, m, i])
            .raw("  fi\nfi\n")
            .line("mkdir -p {} && uuid=$(blkid -o value -s UUID \"$dev\") || fail {}", &[m, i])
            .line("grep -q \"^UUID=$uuid \" /etc/fstab 2>/dev/null || printf 'UUID=%s %s %s defaults,nofail 0 2\\n' \"$uuid\" {} {} >> /etc/fstab || fail {}", &[m, f, i])
            .line("mount {} > \"$log\" 2>&1 || mount -t {} \"$dev\" {} > \"$log\" 2>&1 || fail {}", &[m, f, m, i])
            .line("say {} changed", &[i]);
        Ok(())
    }
}
