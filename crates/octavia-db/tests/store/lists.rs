//! List queries: filters, tags, sorting, pagination, and what they refuse.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    list_filters_tags_sort_and_pagination,
    list_rejects_bad_marker_key_and_filter,
);

fn names(v: &[LoadBalancer]) -> Vec<String> {
    v.iter()
        .map(|l| l.name.clone().unwrap_or_default())
        .collect()
}

async fn list_filters_tags_sort_and_pagination(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let specs = [
        ("e", vec!["red"], true),
        ("c", vec!["red", "blue"], false),
        ("a", vec!["blue"], true),
        ("d", vec![], true),
        ("b", vec!["green", "red"], true),
    ];
    for (name, tags, enabled) in specs.iter() {
        let mut x = lb(PROJECT, name);
        x.tags = tags.iter().map(|t| t.to_string()).collect();
        x.enabled = *enabled;
        s.create_load_balancer(&x).await.unwrap();
    }
    s.create_load_balancer(&lb("other", "z")).await.unwrap();

    let all = s.list_load_balancers(&ListQuery::default()).await.unwrap();
    assert_eq!(
        names(&all),
        ["e", "c", "a", "d", "b", "z"],
        "default order is creation"
    );
    let mine = ListQuery {
        project_id: Some(PROJECT.into()),
        ..Default::default()
    };
    assert_eq!(s.list_load_balancers(&mine).await.unwrap().len(), 5);

    let f = |col: &str, v: FilterValue| ListQuery {
        filters: vec![Filter {
            column: col.into(),
            value: v,
        }],
        ..Default::default()
    };
    let got = s
        .list_load_balancers(&f("name", FilterValue::Text("c".into())))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c"]);
    let got = s
        .list_load_balancers(&f("enabled", FilterValue::Text("false".into())))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c"]);
    let got = s
        .list_load_balancers(&f("enabled", FilterValue::Bool(true)))
        .await
        .unwrap();
    assert_eq!(got.len(), 5);
    let got = s
        .list_load_balancers(&f("vip_address", FilterValue::Text("10.0.0.10".into())))
        .await
        .unwrap();
    assert_eq!(got.len(), 6);

    let tq = |tags: TagFilter| ListQuery {
        tags,
        project_id: Some(PROJECT.into()),
        ..Default::default()
    };
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let got = s
        .list_load_balancers(&tq(TagFilter {
            all: v(&["red", "blue"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c"]);
    let got = s
        .list_load_balancers(&tq(TagFilter {
            any: v(&["green", "blue"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["c", "a", "b"]);
    let got = s
        .list_load_balancers(&tq(TagFilter {
            not_all: v(&["red", "blue"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["e", "a", "d", "b"]);
    let got = s
        .list_load_balancers(&tq(TagFilter {
            not_any: v(&["red"]),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(names(&got), ["a", "d"]);

    // Sort by name descending, paginate by 2.
    let sorted = |marker: Option<String>, reverse: bool| ListQuery {
        project_id: Some(PROJECT.into()),
        sort: vec![("name".into(), SortDir::Desc)],
        limit: Some(2),
        marker,
        page_reverse: reverse,
        ..Default::default()
    };
    let p1 = s.list_load_balancers(&sorted(None, false)).await.unwrap();
    assert_eq!(names(&p1), ["e", "d"]);
    let p2 = s
        .list_load_balancers(&sorted(Some(p1[1].id.to_string()), false))
        .await
        .unwrap();
    assert_eq!(names(&p2), ["c", "b"]);
    let p3 = s
        .list_load_balancers(&sorted(Some(p2[1].id.to_string()), false))
        .await
        .unwrap();
    assert_eq!(names(&p3), ["a"]);
    let back = s
        .list_load_balancers(&sorted(Some(p3[0].id.to_string()), true))
        .await
        .unwrap();
    assert_eq!(
        names(&back),
        ["c", "b"],
        "page_reverse returns the previous page in order"
    );

    // Ascending by enabled then name.
    let q = ListQuery {
        project_id: Some(PROJECT.into()),
        sort: vec![
            ("enabled".into(), SortDir::Asc),
            ("name".into(), SortDir::Asc),
        ],
        ..Default::default()
    };
    assert_eq!(
        names(&s.list_load_balancers(&q).await.unwrap()),
        ["c", "a", "b", "d", "e"]
    );
}

async fn list_rejects_bad_marker_key_and_filter(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    active_lb(s).await;
    let bad_marker = ListQuery {
        marker: Some(LoadBalancerId::new().to_string()),
        ..Default::default()
    };
    match s.list_load_balancers(&bad_marker).await {
        Err(DbError::Invalid(m)) => assert_eq!(m, "Invalid marker"),
        other => panic!("expected Invalid marker, got {other:?}"),
    }
    let bad_sort = ListQuery {
        sort: vec![("nope".into(), SortDir::Asc)],
        ..Default::default()
    };
    assert!(matches!(
        s.list_pools(&bad_sort).await,
        Err(DbError::Invalid(_))
    ));
    let bad_filter = ListQuery {
        filters: vec![Filter {
            column: "name; DROP TABLE pool".into(),
            value: FilterValue::Text("x".into()),
        }],
        ..Default::default()
    };
    assert!(matches!(
        s.list_listeners(&bad_filter).await,
        Err(DbError::Invalid(_))
    ));
    let bad_value = ListQuery {
        filters: vec![Filter {
            column: "protocol_port".into(),
            value: FilterValue::Text("eighty".into()),
        }],
        ..Default::default()
    };
    assert!(matches!(
        s.list_listeners(&bad_value).await,
        Err(DbError::Invalid(_))
    ));
    let amp_tags = ListQuery {
        tags: TagFilter {
            all: vec!["x".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        s.list_amphorae(&amp_tags).await,
        Err(DbError::Invalid(_))
    ));
    // The catalogue names Octavia's columns.
    let names: Vec<&str> = columns(ObjectKind::HealthMonitor)
        .iter()
        .map(|c| c.name)
        .collect();
    assert!(names.contains(&"rise_threshold") && names.contains(&"type"));
    assert!(columns(ObjectKind::LoadBalancer)
        .iter()
        .any(|c| c.name == "vip_subnet_id"));
}
