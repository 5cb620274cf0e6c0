//! A kubeconfig pointing at a sandbox: plain http, no credentials.

use std::path::Path;

pub const CONTEXT: &str = "redblack-sandbox";

/// The kubeconfig YAML for a sandbox served at `server_url` (`http://127.0.0.1:PORT`).
pub fn kubeconfig_yaml(server_url: &str) -> String {
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
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
preferences: {{}}
users:
- name: {CONTEXT}
  user: {{}}
"
    )
}

/// Writes the kubeconfig, creating parent directories; readable by the owner only
/// out of habit (it holds no secret).
pub fn write_kubeconfig(path: &Path, server_url: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, kubeconfig_yaml(server_url))?;
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
        let yaml = kubeconfig_yaml("http://127.0.0.1:1234");
        let cfg = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(cfg.current_context.as_deref(), Some(CONTEXT));
        assert_eq!(
            cfg.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://127.0.0.1:1234")
        );
    }
}
