//! Users, groups, membership, tokens and activities.

use roster_store::{PostRuleRecord, Store, UserFilter, UserInsert, UserRecord};

use crate::support::{NOW, activity, is_conflict, user};

pub async fn migrating_twice_is_harmless(store: Store) {
    store.migrate().await.expect("second migration");
    store.migrate().await.expect("third migration");
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("alice"), NOW).await.unwrap();
    tx.commit().await.unwrap();
    store.migrate().await.expect("migration over data");
    let mut tx = store.read().await.unwrap();
    assert_eq!(tx.count_users().await.unwrap(), 1);
    assert!(store.ping().await);
}

pub async fn users_round_trip_with_every_field(store: Store) {
    let mut tx = store.write().await.unwrap();
    let insert = UserInsert {
        username: "alice".into(),
        email: "alice@example.com".into(),
        display_name: "Alice Smith".into(),
        active: false,
        hired_on: Some("2026-03-01".into()),
        external_id: Some("ext-1".into()),
        employee_number: Some("E-7".into()),
        role: "admin".into(),
        password_hash: Some("$argon2id$hash".into()),
    };
    let id = tx.insert_user(&insert, NOW).await.unwrap();
    let expected = UserRecord {
        id,
        username: "alice".into(),
        email: "alice@example.com".into(),
        display_name: "Alice Smith".into(),
        active: false,
        hired_on: Some("2026-03-01".into()),
        external_id: Some("ext-1".into()),
        employee_number: Some("E-7".into()),
        role: "admin".into(),
        password_hash: Some("$argon2id$hash".into()),
        created_at: NOW,
    };
    assert_eq!(tx.get_user(id).await.unwrap(), Some(expected.clone()));
    assert_eq!(
        tx.find_user_by_username("alice").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(tx.find_user_by_username("nobody").await.unwrap(), None);
    assert_eq!(tx.get_user(id + 1000).await.unwrap(), None);

    let changed = UserRecord {
        username: "alice2".into(),
        active: true,
        hired_on: None,
        external_id: None,
        role: "learner".into(),
        password_hash: None,
        ..expected.clone()
    };
    tx.update_user(&changed, NOW + 1).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    assert_eq!(tx.get_user(id).await.unwrap(), Some(changed));
    assert_eq!(tx.find_user_by_username("alice").await.unwrap(), None);
}

pub async fn usernames_external_ids_and_group_names_are_unique(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = UserInsert {
        external_id: Some("ext-1".into()),
        ..user("alice")
    };
    tx.insert_user(&alice, NOW).await.unwrap();
    tx.insert_user(&user("bob"), NOW).await.unwrap();
    tx.insert_group("Sales", NOW).await.unwrap();
    tx.commit().await.unwrap();

    // On PostgreSQL a refused statement aborts its transaction, so each
    // refusal gets a transaction of its own.
    let mut tx = store.write().await.unwrap();
    assert!(is_conflict(&tx.insert_user(&user("alice"), NOW).await));
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let same_external = UserInsert {
        external_id: Some("ext-1".into()),
        ..user("carol")
    };
    assert!(is_conflict(&tx.insert_user(&same_external, NOW).await));
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let mut bob = tx.find_user_by_username("bob").await.unwrap().unwrap();
    bob.username = "alice".into();
    assert!(is_conflict(&tx.update_user(&bob, NOW).await));
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert!(is_conflict(&tx.insert_group("Sales", NOW).await));
    tx.rollback().await.unwrap();

    let mut tx = store.write().await.unwrap();
    let support = tx.insert_group("Support", NOW).await.unwrap();
    assert!(is_conflict(&tx.rename_group(support, "Sales").await));
    tx.rollback().await.unwrap();

    // Users without an external id do not collide with each other.
    let mut tx = store.write().await.unwrap();
    tx.insert_user(&user("dave"), NOW).await.unwrap();
    tx.insert_user(&user("erin"), NOW).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert_eq!(tx.count_users().await.unwrap(), 4);
}

pub async fn groups_and_membership_round_trip(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    let sales = tx.insert_group("Sales", NOW).await.unwrap();
    let support = tx.insert_group("Support", NOW).await.unwrap();
    assert!(tx.add_member(sales, alice).await.unwrap());
    assert!(!tx.add_member(sales, alice).await.unwrap());
    assert!(tx.add_member(sales, bob).await.unwrap());
    assert!(tx.add_member(support, alice).await.unwrap());
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert_eq!(
        tx.user_group_ids(alice).await.unwrap(),
        vec![sales, support]
    );
    assert_eq!(tx.user_group_ids(bob).await.unwrap(), vec![sales]);
    let group = tx.get_group(sales).await.unwrap().unwrap();
    assert_eq!(
        (group.id, group.name.as_str(), group.member_count),
        (sales, "Sales", 2)
    );
    assert_eq!(
        tx.find_group_by_name("Support").await.unwrap(),
        Some(support)
    );
    assert_eq!(tx.find_group_by_name("Nobody").await.unwrap(), None);
    assert_eq!(
        tx.missing_groups(&[sales, support + 100, support])
            .await
            .unwrap(),
        vec![support + 100]
    );

    assert!(tx.remove_member(sales, bob).await.unwrap());
    assert!(!tx.remove_member(sales, bob).await.unwrap());
    tx.rename_group(support, "Helpdesk").await.unwrap();
    let listed = tx.list_groups(0, 10).await.unwrap();
    let names: Vec<(&str, i64)> = listed
        .iter()
        .map(|group| (group.name.as_str(), group.member_count))
        .collect();
    assert_eq!(names, vec![("Sales", 1), ("Helpdesk", 1)]);
    assert_eq!(tx.list_groups(sales, 10).await.unwrap().len(), 1);
    assert_eq!(tx.list_groups(0, 1).await.unwrap()[0].id, sales);

    tx.delete_group(support).await.unwrap();
    assert_eq!(tx.get_group(support).await.unwrap(), None);
    assert_eq!(tx.user_group_ids(alice).await.unwrap(), vec![sales]);
    tx.commit().await.unwrap();
}

pub async fn list_users_filters_by_text_active_and_group_and_pages_by_id(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let alicia = UserInsert {
        display_name: "ALICIA Jones".into(),
        active: false,
        ..user("ajones")
    };
    let alicia = tx.insert_user(&alicia, NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    let carol = UserInsert {
        email: "carol@ali.example".into(),
        ..user("carol")
    };
    let carol = tx.insert_user(&carol, NOW).await.unwrap();
    let sales = tx.insert_group("Sales", NOW).await.unwrap();
    tx.add_member(sales, bob).await.unwrap();
    tx.add_member(sales, alicia).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.read().await.unwrap();
    let ids = |users: Vec<UserRecord>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let all = UserFilter {
        limit: 100,
        ..UserFilter::default()
    };
    assert_eq!(
        ids(tx.list_users(&all).await.unwrap()),
        vec![alice, alicia, bob, carol]
    );
    let by_text = UserFilter {
        q: Some("ALI".into()),
        ..all.clone()
    };
    // Username, display name and email are searched, case-insensitively.
    assert_eq!(
        ids(tx.list_users(&by_text).await.unwrap()),
        vec![alice, alicia, carol]
    );
    let inactive = UserFilter {
        active: Some(false),
        ..all.clone()
    };
    assert_eq!(ids(tx.list_users(&inactive).await.unwrap()), vec![alicia]);
    let active = UserFilter {
        active: Some(true),
        ..all.clone()
    };
    assert_eq!(
        ids(tx.list_users(&active).await.unwrap()),
        vec![alice, bob, carol]
    );
    let in_sales = UserFilter {
        group_id: Some(sales),
        ..all.clone()
    };
    assert_eq!(
        ids(tx.list_users(&in_sales).await.unwrap()),
        vec![alicia, bob]
    );
    let combined = UserFilter {
        group_id: Some(sales),
        active: Some(true),
        q: Some("b".into()),
        ..all.clone()
    };
    assert_eq!(ids(tx.list_users(&combined).await.unwrap()), vec![bob]);

    let mut seen = Vec::new();
    let mut page = UserFilter { limit: 3, ..all };
    loop {
        let got = ids(tx.list_users(&page).await.unwrap());
        assert!(got.len() <= 3);
        let Some(&last) = got.last() else { break };
        seen.extend(got);
        page.after_id = last;
    }
    assert_eq!(seen, vec![alice, alicia, bob, carol]);
}

pub async fn tokens_find_their_user_by_hash(store: Store) {
    let mut tx = store.write().await.unwrap();
    let alice = tx.insert_user(&user("alice"), NOW).await.unwrap();
    let bob = tx.insert_user(&user("bob"), NOW).await.unwrap();
    tx.insert_token(alice, "hash-1", NOW).await.unwrap();
    assert_eq!(
        tx.find_user_by_token_hash("hash-1")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(alice)
    );
    // Re-inserting a hash moves it rather than failing.
    tx.insert_token(bob, "hash-1", NOW).await.unwrap();
    assert_eq!(
        tx.find_user_by_token_hash("hash-1")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob)
    );
    assert_eq!(tx.find_user_by_token_hash("other").await.unwrap(), None);
    tx.commit().await.unwrap();
}

pub async fn activities_round_trip_with_prerequisites_items_and_rules(store: Store) {
    let mut tx = store.write().await.unwrap();
    let course = tx
        .insert_activity(&activity("Fire Safety"), NOW)
        .await
        .unwrap();
    let hidden = activity("Hidden Course");
    let hidden = tx
        .insert_activity(
            &roster_store::ActivityRecord {
                in_catalog: false,
                ..hidden
            },
            NOW,
        )
        .await
        .unwrap();
    let curriculum = roster_store::ActivityRecord {
        kind: "curriculum".into(),
        ..activity("Onboarding")
    };
    let curriculum = tx.insert_activity(&curriculum, NOW).await.unwrap();

    let mut stored = tx.get_activity(course).await.unwrap().unwrap();
    assert_eq!(stored.title, "Fire Safety");
    assert_eq!(stored.kind, "online_course");
    assert!(stored.active && stored.in_catalog && !stored.allow_failure);
    assert_eq!(stored.created_at, NOW);
    assert_eq!(stored.auto_rule, None);
    assert_eq!(
        tx.find_activity_by_token("token-fire-safety")
            .await
            .unwrap()
            .map(|a| a.id),
        Some(course)
    );
    stored.title = "Fire Safety 2".into();
    stored.active = false;
    tx.update_activity(&stored, NOW + 1).await.unwrap();
    assert_eq!(tx.get_activity(course).await.unwrap(), Some(stored));

    tx.set_prerequisites(curriculum, &[hidden, course])
        .await
        .unwrap();
    assert_eq!(
        tx.prerequisite_ids(curriculum).await.unwrap(),
        vec![course, hidden]
    );
    tx.set_prerequisites(curriculum, &[hidden]).await.unwrap();
    assert_eq!(tx.prerequisite_ids(curriculum).await.unwrap(), vec![hidden]);
    // Items keep their order.
    tx.set_items(curriculum, &[hidden, course]).await.unwrap();
    assert_eq!(tx.item_ids(curriculum).await.unwrap(), vec![hidden, course]);
    assert_eq!(tx.parents_of(course).await.unwrap(), vec![curriculum]);
    assert_eq!(
        tx.missing_activities(&[course, curriculum + 50])
            .await
            .unwrap(),
        vec![curriculum + 50]
    );

    let listed: Vec<i64> = tx
        .list_activities(Some("SAFE"), None, false, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, vec![course]);
    let catalog: Vec<i64> = tx
        .list_activities(None, None, true, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(catalog, vec![curriculum]);
    let curricula: Vec<i64> = tx
        .list_activities(None, Some("curriculum"), false, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(curricula, vec![curriculum]);

    let sales = tx.insert_group("Sales", NOW).await.unwrap();
    let rule = r#"{"scope":"groups","group_ids":[1],"recurrence":{"kind":"one_time"}}"#;
    tx.set_auto_rule(hidden, Some(rule), &[sales], NOW)
        .await
        .unwrap();
    let with_rules: Vec<i64> = tx
        .activities_with_rules()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(with_rules, vec![hidden]);
    assert_eq!(
        tx.get_activity(hidden).await.unwrap().unwrap().auto_rule,
        Some(rule.to_string())
    );
    tx.set_auto_rule(hidden, None, &[], NOW).await.unwrap();
    assert!(tx.activities_with_rules().await.unwrap().is_empty());

    let post = PostRuleRecord {
        id: 0,
        activity_id: course,
        trigger_on: "completed".into(),
        delay_days: 3,
        target_ids: format!("[{hidden}]"),
        allow_consecutive: false,
    };
    let rule_id = tx.insert_post_rule(&post, NOW).await.unwrap();
    let mut expected = PostRuleRecord {
        id: rule_id,
        ..post
    };
    assert_eq!(tx.post_rules(course).await.unwrap(), vec![expected.clone()]);
    expected.delay_days = 0;
    expected.allow_consecutive = true;
    tx.update_post_rule(&expected).await.unwrap();
    assert_eq!(tx.post_rules(course).await.unwrap(), vec![expected]);
    tx.delete_post_rule(rule_id).await.unwrap();
    assert!(tx.post_rules(course).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}
