//! The operator's catalogue: flavors, availability zones and their profiles, and what a load
//! balancer's use of them locks.

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    flavors_and_their_profiles,
    availability_zones_and_their_profiles,
    load_balancers_hold_their_flavor_and_zone,
);

fn profile(name: &str, data: &str) -> FlavorProfile {
    FlavorProfile {
        id: FlavorProfileId::new(),
        name: name.into(),
        provider_name: "amphora".into(),
        flavor_data: data.into(),
    }
}

fn flavor(name: &str, profile: FlavorProfileId) -> Flavor {
    Flavor {
        id: FlavorId::new(),
        name: name.into(),
        description: Some("d".into()),
        enabled: true,
        flavor_profile_id: profile,
    }
}

fn zone_profile(name: &str, data: &str) -> AvailabilityZoneProfile {
    AvailabilityZoneProfile {
        id: AvailabilityZoneProfileId::new(),
        name: name.into(),
        provider_name: "amphora".into(),
        availability_zone_data: data.into(),
    }
}

fn zone(name: &str, profile: AvailabilityZoneProfileId) -> AvailabilityZone {
    AvailabilityZone {
        name: name.into(),
        description: None,
        enabled: true,
        availability_zone_profile_id: profile,
    }
}

fn conflict(e: DbError) -> String {
    match e {
        DbError::Conflict(m) => m,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn invalid(e: DbError) -> String {
    match e {
        DbError::Invalid(m) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn names<T>(v: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    v.iter().map(|x| name(x).to_string()).collect()
}

async fn flavors_and_their_profiles(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let p = s
        .create_flavor_profile(&profile("p1", r#"{"compute_flavor": "m1"}"#))
        .await
        .unwrap();
    assert_eq!(s.get_flavor_profile(p.id).await.unwrap().as_ref(), Some(&p));

    // A profile no flavor uses may change anything.
    let mut p2 = p.clone();
    p2.flavor_data = r#"{"compute_flavor": "m2"}"#.into();
    p2.provider_name = "octavia".into();
    s.update_flavor_profile(&p2).await.unwrap();
    assert_eq!(s.get_flavor_profile(p.id).await.unwrap(), Some(p2.clone()));

    let ghost = FlavorProfileId::new();
    let err = invalid(s.create_flavor(&flavor("gold", ghost)).await.unwrap_err());
    assert_eq!(err, format!("Flavor Profile {ghost} not found."));

    let gold = s.create_flavor(&flavor("gold", p.id)).await.unwrap();
    assert_eq!(s.get_flavor(gold.id).await.unwrap().as_ref(), Some(&gold));
    let (f, fp) = s.get_flavor_with_profile(gold.id).await.unwrap().unwrap();
    assert_eq!((f, fp), (gold.clone(), p2.clone()));
    let err = conflict(s.create_flavor(&flavor("gold", p.id)).await.unwrap_err());
    assert_eq!(err, "A flavor of gold already exists.");
    let silver = s.create_flavor(&flavor("silver", p.id)).await.unwrap();
    let err = conflict(
        s.update_flavor(&Flavor {
            name: "gold".into(),
            ..silver.clone()
        })
        .await
        .unwrap_err(),
    );
    assert_eq!(err, "A flavor of gold already exists.");
    let off = s
        .update_flavor(&Flavor {
            enabled: false,
            description: None,
            ..silver.clone()
        })
        .await
        .unwrap();
    assert_eq!(s.get_flavor(silver.id).await.unwrap(), Some(off));
    let missing = Flavor {
        id: FlavorId::new(),
        ..gold.clone()
    };
    assert!(matches!(
        s.update_flavor(&missing).await,
        Err(DbError::NotFound {
            kind: RecordKind::Flavor,
            ..
        })
    ));

    // In use by a flavor: its provider and settings are fixed, its name is not; it stays.
    let mut changed = p2.clone();
    changed.flavor_data = "{}".into();
    let err = conflict(s.update_flavor_profile(&changed).await.unwrap_err());
    assert_eq!(
        err,
        format!("Flavor profile {} is in use and cannot be modified.", p.id)
    );
    let renamed = FlavorProfile {
        name: "renamed".into(),
        ..p2.clone()
    };
    s.update_flavor_profile(&renamed).await.unwrap();
    conflict(s.delete_flavor_profile(p.id).await.unwrap_err());

    // Lists: filters, sorting and keyset pages on the catalogue's own keys.
    let q = |filters: Vec<Filter>, sort: Vec<(String, SortDir)>| ListQuery {
        filters,
        sort,
        ..ListQuery::default()
    };
    let disabled = s
        .list_flavors(&q(
            vec![Filter {
                column: "enabled".into(),
                value: FilterValue::Text("false".into()),
            }],
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(names(&disabled, |f| &f.name), ["silver"]);
    let by_name = s
        .list_flavors(&q(vec![], vec![("name".into(), SortDir::Desc)]))
        .await
        .unwrap();
    assert_eq!(names(&by_name, |f| &f.name), ["silver", "gold"]);
    let page = s
        .list_flavors(&ListQuery {
            sort: vec![("name".into(), SortDir::Asc)],
            marker: Some(gold.id.to_string()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&page, |f| &f.name), ["silver"]);
    assert!(matches!(
        s.list_flavors(&q(
            vec![Filter {
                column: "project_id".into(),
                value: FilterValue::Text("p".into()),
            }],
            vec![],
        ))
        .await,
        Err(DbError::Invalid(_))
    ));
    assert_eq!(
        s.list_flavor_profiles(&ListQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // Deleting: flavors first, then the profile is free.
    s.delete_flavor(gold.id).await.unwrap();
    s.delete_flavor(silver.id).await.unwrap();
    assert!(matches!(
        s.delete_flavor(gold.id).await,
        Err(DbError::NotFound {
            kind: RecordKind::Flavor,
            ..
        })
    ));
    s.delete_flavor_profile(p.id).await.unwrap();
    assert!(s.get_flavor_profile(p.id).await.unwrap().is_none());
    assert!(matches!(
        s.delete_flavor_profile(p.id).await,
        Err(DbError::NotFound {
            kind: RecordKind::FlavorProfile,
            ..
        })
    ));
}

async fn availability_zones_and_their_profiles(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let p = s
        .create_availability_zone_profile(&zone_profile("zp", r#"{"compute_zone": "east"}"#))
        .await
        .unwrap();
    let ghost = AvailabilityZoneProfileId::new();
    let err = invalid(
        s.create_availability_zone(&zone("az1", ghost))
            .await
            .unwrap_err(),
    );
    assert_eq!(err, format!("Availability Zone Profile {ghost} not found."));
    for name in ["az2", "az1", "az3"] {
        s.create_availability_zone(&zone(name, p.id)).await.unwrap();
    }
    let err = conflict(
        s.create_availability_zone(&zone("az1", p.id))
            .await
            .unwrap_err(),
    );
    assert_eq!(err, "A availability zone of az1 already exists.");
    let (z, zp) = s
        .get_availability_zone_with_profile("az1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((z.name.as_str(), zp), ("az1", p.clone()));
    let changed = s
        .update_availability_zone(&AvailabilityZone {
            description: Some("first".into()),
            enabled: false,
            ..z
        })
        .await
        .unwrap();
    assert_eq!(s.get_availability_zone("az1").await.unwrap(), Some(changed));
    assert!(matches!(
        s.update_availability_zone(&zone("nowhere", p.id)).await,
        Err(DbError::NotFound {
            kind: RecordKind::AvailabilityZone,
            ..
        })
    ));

    // Keyed by name: the default order and the marker are names.
    let all = s
        .list_availability_zones(&ListQuery::default())
        .await
        .unwrap();
    assert_eq!(names(&all, |z| &z.name), ["az1", "az2", "az3"]);
    let page = s
        .list_availability_zones(&ListQuery {
            marker: Some("az1".into()),
            limit: Some(1),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&page, |z| &z.name), ["az2"]);

    let mut p2 = p.clone();
    p2.availability_zone_data = "{}".into();
    let err = conflict(s.update_availability_zone_profile(&p2).await.unwrap_err());
    assert_eq!(
        err,
        format!(
            "Availability Zone Profile {} is in use and cannot be modified.",
            p.id
        )
    );
    conflict(s.delete_availability_zone_profile(p.id).await.unwrap_err());
    for name in ["az1", "az2", "az3"] {
        s.delete_availability_zone(name).await.unwrap();
    }
    assert!(matches!(
        s.delete_availability_zone("az1").await,
        Err(DbError::NotFound {
            kind: RecordKind::AvailabilityZone,
            ..
        })
    ));
    s.update_availability_zone_profile(&p2).await.unwrap();
    s.delete_availability_zone_profile(p.id).await.unwrap();
    assert!(s
        .list_availability_zone_profiles(&ListQuery::default())
        .await
        .unwrap()
        .is_empty());
}

async fn load_balancers_hold_their_flavor_and_zone(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let fp = s.create_flavor_profile(&profile("p", "{}")).await.unwrap();
    let gold = s.create_flavor(&flavor("gold", fp.id)).await.unwrap();
    let zp = s
        .create_availability_zone_profile(&zone_profile("zp", "{}"))
        .await
        .unwrap();
    let az = s
        .create_availability_zone(&zone("az1", zp.id))
        .await
        .unwrap();

    let with = |flavor: Option<String>, zone: Option<&str>| LoadBalancer {
        flavor_id: flavor,
        availability_zone: zone.map(String::from),
        ..lb(PROJECT, "lb")
    };
    let err = invalid(
        s.create_load_balancer(&with(Some(FlavorId::new().to_string()), None))
            .await
            .unwrap_err(),
    );
    assert_eq!(err, "Validation failure: Invalid flavor_id.");
    let err = invalid(
        s.create_load_balancer(&with(None, Some("nowhere")))
            .await
            .unwrap_err(),
    );
    assert_eq!(err, "Validation failure: Invalid availability zone.");
    s.update_flavor(&Flavor {
        enabled: false,
        ..gold.clone()
    })
    .await
    .unwrap();
    let err = invalid(
        s.create_load_balancer(&with(Some(gold.id.to_string()), None))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err,
        format!(
            "The selected flavor is not allowed in this deployment: {}",
            gold.id
        )
    );
    s.update_flavor(&gold).await.unwrap();
    s.update_availability_zone(&AvailabilityZone {
        enabled: false,
        ..az.clone()
    })
    .await
    .unwrap();
    let err = invalid(
        s.create_load_balancer(&with(None, Some("az1")))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err,
        "The selected availability_zone is not allowed in this deployment: az1"
    );
    s.update_availability_zone(&az).await.unwrap();
    assert!(
        s.list_load_balancers(&ListQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "a refused create leaves nothing"
    );

    let want = with(Some(gold.id.to_string()), Some("az1"));
    let (got, job) = s.create_load_balancer(&want).await.unwrap();
    assert_eq!(got.flavor_id, want.flavor_id);
    assert_eq!(got.availability_zone.as_deref(), Some("az1"));
    assert_eq!(s.get_load_balancer(want.id).await.unwrap(), Some(got));

    // In use by a live load balancer: neither goes.
    let err = conflict(s.delete_flavor(gold.id).await.unwrap_err());
    assert_eq!(
        err,
        format!("Flavor {} is in use and cannot be modified.", gold.id)
    );
    let err = conflict(s.delete_availability_zone("az1").await.unwrap_err());
    assert_eq!(
        err,
        "Availability Zone az1 is in use and cannot be modified."
    );

    // Once the load balancer is DELETED, they may go.
    settle(s, job).await;
    let delete = s.delete_load_balancer(want.id, false).await.unwrap();
    settle(s, delete).await;
    assert!(s.get_load_balancer(want.id).await.unwrap().is_none());
    s.delete_flavor(gold.id).await.unwrap();
    s.delete_availability_zone("az1").await.unwrap();
    s.delete_flavor_profile(fp.id).await.unwrap();
    s.delete_availability_zone_profile(zp.id).await.unwrap();
}
