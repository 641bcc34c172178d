//! The terraform runner against the real terraform binary, on a workspace that needs no
//! provider download (`terraform_data` is built in), as the local target's is.

use std::path::PathBuf;

use provisioner::exec::terraform::{Stream, Terraform, TerraformHost};

fn workspace(main_tf: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("main.tf"), main_tf).expect("write main.tf");
    let path = dir.path().to_path_buf();
    (dir, path)
}

const MAIN_TF: &str = r#"
resource "terraform_data" "vm" {
  for_each = { lb = "10.0.0.2", web1 = "10.0.0.11" }
  input    = each.value
  provisioner "local-exec" {
    command = "echo created ${each.key}"
  }
}

output "hosts" {
  value = {
    for name, vm in terraform_data.vm : name => {
      role = name == "lb" ? "lb" : "web"
      ip   = vm.output
    }
  }
}
"#;

#[tokio::test]
async fn init_apply_output_destroy_with_streamed_output() {
    let (_keep, dir) = workspace(MAIN_TF);
    let terraform = Terraform::new(&dir);
    let mut lines: Vec<(Stream, String)> = Vec::new();
    terraform
        .init(|s, l| lines.push((s, l.to_owned())))
        .await
        .expect("init");
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.contains("Terraform has been successfully initialized")),
        "{lines:?}"
    );

    lines.clear();
    terraform
        .apply(|s, l| lines.push((s, l.to_owned())))
        .await
        .expect("apply");
    assert!(
        lines
            .iter()
            .any(|(s, l)| *s == Stream::Stdout && l.contains("created web1")),
        "local-exec output should stream through: {lines:?}"
    );

    let hosts = terraform.output_hosts().await.expect("output");
    assert_eq!(
        hosts,
        vec![
            TerraformHost {
                name: "lb".into(),
                role: "lb".into(),
                ip: "10.0.0.2".into()
            },
            TerraformHost {
                name: "web1".into(),
                role: "web".into(),
                ip: "10.0.0.11".into()
            },
        ]
    );

    terraform.destroy(|_, _| {}).await.expect("destroy");
    let error = terraform.output_hosts().await.unwrap_err().to_string();
    assert!(error.contains("no `hosts` output"), "{error}");
}

#[tokio::test]
async fn failure_carries_terraforms_own_error_text() {
    let (_keep, dir) =
        workspace("resource \"terraform_data\" \"x\" {\n  input = undefined_thing\n}\n");
    let terraform = Terraform::new(&dir);
    terraform.init(|_, _| {}).await.expect("init");
    let error = terraform.apply(|_, _| {}).await.unwrap_err().to_string();
    assert!(error.contains("terraform apply"), "{error}");
    assert!(error.contains(&dir.display().to_string()), "{error}");
    assert!(
        error.contains("undefined_thing"),
        "terraform's diagnostic should be in: {error}"
    );
}
