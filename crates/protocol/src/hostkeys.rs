//! SSH host keys as cloud-init prints them on an instance's console: the block between
//! `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`.

pub const HOST_KEYS_BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
pub const HOST_KEYS_END: &str = "-----END SSH HOST KEY KEYS-----";

/// The key lines (`TYPE BASE64`, comment dropped) of the last complete host-key block of a
/// console output; empty when there is none (cloud-init has not printed it yet). Lines that
/// are not a key type and a base64 blob are skipped, so nothing else reaches known_hosts.
pub fn host_keys_in_console(console: &str) -> Vec<String> {
    let Some(begin) = console.rfind(HOST_KEYS_BEGIN) else {
        return Vec::new();
    };
    let block = &console[begin + HOST_KEYS_BEGIN.len()..];
    let Some(end) = block.find(HOST_KEYS_END) else {
        return Vec::new();
    };
    block[..end]
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (kind, blob) = (parts.next()?, parts.next()?);
            let kind_ok = kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-");
            let kind_ok = kind_ok
                && kind
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '@' | '.'));
            let blob_ok = blob.len() >= 16
                && blob
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
            (kind_ok && blob_ok).then(|| format!("{kind} {blob}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_last_complete_block_only() {
        let console = "\
[   12.1] cloud-init[812]: Cloud-init v. 23.1 running
ec2: #############################################################
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI root@ip-10-0-0-4
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld root@ip-10-0-0-4
-----END SSH HOST KEY KEYS-----
";
        assert_eq!(
            host_keys_in_console(console),
            [
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld"
            ]
        );
        // Printed twice (a reboot): the last block counts.
        let twice = format!("{console}\n{HOST_KEYS_BEGIN}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINew\n{HOST_KEYS_END}\n");
        assert_eq!(
            host_keys_in_console(&twice),
            ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINew"]
        );
    }

    #[test]
    fn no_block_or_no_end_or_junk_gives_no_key() {
        assert!(host_keys_in_console("booting...").is_empty());
        assert!(host_keys_in_console(&format!(
            "{HOST_KEYS_BEGIN}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld\n"
        ))
        .is_empty());
        let junk = format!("{HOST_KEYS_BEGIN}\n@cert-authority * ssh-ed25519 AAAA\nssh-ed25519 AAAA;rm -rf /x\nssh-ed25519\n{HOST_KEYS_END}");
        assert!(
            host_keys_in_console(&junk).is_empty(),
            "{:?}",
            host_keys_in_console(&junk)
        );
    }
}
