//! A kubeconfig pointing at a sandbox: plain http, a bearer token.

use std::path::Path;

pub const CONTEXT: &str = "redblack-sandbox";
/// The kubeconfig user entry of the administrator.
pub const ADMIN_USER: &str = "sandbox-admin";

/// The kubeconfig YAML for a sandbox served at `server_url`
/// (`http://127.0.0.1:PORT`), acting as `user` (only a label in the file:
/// the token says who it is) with `token`, in `namespace`.
pub fn kubeconfig_yaml(server_url: &str, user: &str, token: &str, namespace: &str) -> String {
    // Quoted: user names like `system:serviceaccount:ns:sa` contain colons.
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server_url}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: '{user}'
    namespace: {namespace}
current-context: {CONTEXT}
preferences: {{}}
users:
- name: '{user}'
  user:
    token: {token}
"
    )
}

/// Writes a kubeconfig, creating parent directories; readable by the owner
/// only (it holds a token).
pub fn write_kubeconfig(path: &Path, yaml: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, yaml)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_a_kube_config() {
        let yaml = kubeconfig_yaml(
            "http://127.0.0.1:1234",
            "system:serviceaccount:ns:sa",
            "abc123",
            "ns",
        );
        let cfg = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(cfg.current_context.as_deref(), Some(CONTEXT));
        assert_eq!(
            cfg.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
        let user = &cfg.auth_infos[0];
        assert_eq!(user.name, "system:serviceaccount:ns:sa");
        assert!(user.auth_info.as_ref().unwrap().token.is_some());
        assert!(yaml.contains("    token: abc123\n"));
        assert_eq!(
            cfg.contexts[0]
                .context
                .as_ref()
                .unwrap()
                .namespace
                .as_deref(),
            Some("ns")
        );
    }
}
