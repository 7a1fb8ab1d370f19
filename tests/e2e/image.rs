//! The container image, read as the file that builds it (no container
//! engine runs here): what runs in it runs without privileges.

use switchyard_tests::*;

/// The image's last stage switches to a user that is not root, before the
/// entry point, and nothing after switches back.
#[test]
fn the_image_runs_as_a_user_without_privileges() {
    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile")).unwrap();
    let last_stage = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a multi-stage Dockerfile");
    let users: Vec<&str> = last_stage
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .collect();
    let user = users.last().expect("the last stage sets a USER");
    let name = user.split(':').next().unwrap().trim();
    assert!(!matches!(name, "root" | "0"), "the image runs as {user:?}");
    let user_at = last_stage.rfind("\nUSER ").unwrap();
    let entry_at = last_stage.find("ENTRYPOINT").expect("an entry point");
    assert!(user_at < entry_at, "USER comes after the entry point");
}
