//! The Keystone fixture against the run's real Keystone (scripts/test.sh starts it): what it
//! creates is what Keystone's token validation reports.

use std::process::Command;

use chrono::{DateTime, Utc};
use octavia_test_support::keystone::{openstack_python, unique, Keystone};
use reqwest::StatusCode;
use serde_json::Value;

fn role_names(token: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = token["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("no roles in {token}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn a_user_token_validates_with_its_project_and_roles() {
    let Some(ks) = Keystone::from_env("a_user_token_validates_with_its_project_and_roles") else {
        return;
    };
    let project = ks.create_project(&unique("project")).await;
    let password = unique("pw");
    let user = ks.create_user(&unique("user"), &password, &project).await;
    let role_name = unique("role");
    let role = ks.ensure_role(&role_name).await;
    assert_eq!(
        ks.ensure_role(&role_name).await,
        role,
        "ensure_role finds it"
    );
    ks.grant(&user, &project, &role).await;
    let member = ks.ensure_role("member").await;
    ks.grant(&user, &project, &member).await;

    let token = ks.token(&user, &password, &project).await.unwrap();
    assert!(token.expires_at > Utc::now(), "{token:?}");

    let v = ks.validate(&token.id, false).await.unwrap();
    assert_eq!(v["project"]["id"], project.as_str(), "{v}");
    assert_eq!(v["project"]["domain"]["id"], "default", "{v}");
    assert_eq!(v["user"]["id"], user.as_str(), "{v}");
    assert!(v.get("catalog").is_none(), "?nocatalog: {v}");
    // member implies reader.
    let mut want = vec!["member", "reader", role_name.as_str()];
    want.sort_unstable();
    assert_eq!(role_names(&v), want, "{v}");
    let expires: DateTime<Utc> = v["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires, token.expires_at);

    let with_catalog = ks.validate(&token.id, true).await.unwrap();
    assert!(with_catalog["catalog"].is_array(), "{with_catalog}");

    let wrong = ks
        .token(&user, "not-the-password", &project)
        .await
        .unwrap_err();
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong:?}");

    ks.revoke(&token.id).await;
    let revoked = ks.validate(&token.id, false).await.unwrap_err();
    assert_eq!(revoked.status, StatusCode::NOT_FOUND, "{revoked:?}");

    ks.delete_user(&user).await;
    ks.delete_project(&project).await;
}

#[tokio::test]
async fn tenants_get_their_roles_and_the_service_user_validates_their_tokens() {
    let Some(ks) =
        Keystone::from_env("tenants_get_their_roles_and_the_service_user_validates_their_tokens")
    else {
        return;
    };
    // Concurrently, as parallel tests do: names never collide, roles are created once.
    let roles = ["load-balancer_member", "member"];
    let (a, b) = tokio::join!(ks.tenant(&roles), ks.tenant(&["reader"]));
    assert_ne!(a.project_id, b.project_id);

    // The service user validates a tenant's token, as the API will.
    let service = ks.service_token().await;
    let answer = reqwest::Client::new()
        .get(format!("{}/auth/tokens?nocatalog", ks.v3()))
        .header("X-Auth-Token", &service.id)
        .header("X-Subject-Token", &a.token.id)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let v: Value = answer.json().await.unwrap();
    let v = &v["token"];
    assert_eq!(v["project"]["id"], a.project_id.as_str(), "{v}");
    assert_eq!(
        role_names(v),
        ["load-balancer_member", "member", "reader"],
        "{v}"
    );
    let v = ks.validate(&b.token.id, false).await.unwrap();
    assert_eq!(role_names(&v), ["reader"], "{v}");

    // A tenant's token may not validate another's.
    let denied = reqwest::Client::new()
        .get(format!("{}/auth/tokens", ks.v3()))
        .header("X-Auth-Token", &b.token.id)
        .header("X-Subject-Token", &a.token.id)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    let (project, user) = (a.project_id.clone(), a.user_id.clone());
    a.delete(&ks).await;
    b.delete(&ks).await;
    for path in [format!("/projects/{project}"), format!("/users/{user}")] {
        let gone = ks
            .request(reqwest::Method::GET, &path, None, StatusCode::OK)
            .await
            .unwrap_err();
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn openstacksdk_finds_the_endpoint_of_its_region() {
    let test = "openstacksdk_finds_the_endpoint_of_its_region";
    let Some(ks) = Keystone::from_env(test) else {
        return;
    };
    let Some(python) = openstack_python(test) else {
        return;
    };
    // Two tests' endpoints at once: each client finds its own by region.
    let (mine, other) = tokio::join!(
        ks.create_service_and_endpoint("load-balancer", "http://127.0.0.1:1/mine"),
        ks.create_service_and_endpoint("load-balancer", "http://127.0.0.1:2/other"),
    );
    let tenant = ks.tenant(&["member"]).await;
    let script = r#"
import sys
import openstack
auth_url, user, password, project, region = sys.argv[1:]
conn = openstack.connect(
    auth_url=auth_url, username=user, password=password, project_name=project,
    user_domain_id="default", project_domain_id="default", region_name=region)
print(conn.session.get_endpoint(service_type="load-balancer", interface="public",
                                region_name=region))
"#;
    for (endpoint, url) in [
        (&mine, "http://127.0.0.1:1/mine"),
        (&other, "http://127.0.0.1:2/other"),
    ] {
        let out = Command::new(&python)
            .args(["-c", script, &ks.v3()])
            .args([&tenant.user_name, &tenant.password, &tenant.project_name])
            .arg(&endpoint.region)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openstacksdk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
    }
    tenant.delete(&ks).await;
    mine.delete(&ks).await;
    other.delete(&ks).await;
}
