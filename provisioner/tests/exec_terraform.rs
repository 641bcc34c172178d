//! The terraform runner against the real terraform binary, on a workspace that needs no
//! provider download (`terraform_data` is built in), as the local target's is.

use std::path::PathBuf;

use provisioner::changes::{parse_plan, summary};
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

    assert!(
        terraform
            .state_list()
            .await
            .expect("no state yet")
            .is_empty(),
        "nothing before the first apply"
    );
    let plan_file = "tfplan";
    assert!(
        terraform
            .plan(plan_file, &[], |_, _| {})
            .await
            .expect("plan"),
        "a fresh workspace has changes"
    );
    let changes = parse_plan(&terraform.show_plan(plan_file).await.expect("show")).expect("json");
    assert_eq!(summary(&changes), "2 to add, 0 to change, 0 to destroy");
    lines.clear();
    terraform
        .apply_plan(plan_file, |s, l| lines.push((s, l.to_owned())))
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

    assert!(
        !terraform
            .plan(plan_file, &[], |_, _| {})
            .await
            .expect("plan"),
        "nothing to do after apply"
    );
    assert!(
        terraform
            .plan(plan_file, &["terraform_data.vm[\"lb\"]".into()], |_, _| {})
            .await
            .expect("plan a replacement"),
        "-replace forces a change"
    );
    let changes = parse_plan(&terraform.show_plan(plan_file).await.expect("show")).expect("json");
    assert_eq!(summary(&changes), "1 to add, 0 to change, 1 to destroy");
    assert_eq!(
        terraform.state_list().await.expect("state list"),
        ["terraform_data.vm[\"lb\"]", "terraform_data.vm[\"web1\"]"]
    );

    terraform
        .destroy(&["terraform_data.vm[\"web1\"]".into()], |_, _| {})
        .await
        .expect("targeted destroy");
    assert_eq!(
        terraform.state_list().await.expect("state list"),
        ["terraform_data.vm[\"lb\"]"]
    );
    terraform.destroy(&[], |_, _| {}).await.expect("destroy");
    let error = terraform.output_hosts().await.unwrap_err().to_string();
    assert!(error.contains("no `hosts` output"), "{error}");
}

#[tokio::test]
async fn failure_carries_terraforms_own_error_text() {
    let (_keep, dir) =
        workspace("resource \"terraform_data\" \"x\" {\n  input = undefined_thing\n}\n");
    let terraform = Terraform::new(&dir);
    terraform.init(|_, _| {}).await.expect("init");
    let error = terraform
        .plan("tfplan", &[], |_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("terraform plan"), "{error}");
    assert!(error.contains(&dir.display().to_string()), "{error}");
    assert!(
        error.contains("undefined_thing"),
        "terraform's diagnostic should be in: {error}"
    );
}
