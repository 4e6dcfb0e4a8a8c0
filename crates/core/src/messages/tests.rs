//! The messages against their `proto/*.schema.json` descriptions and their wire forms.

use super::*;
use crate::retry::Strategy;

fn event(data: serde_json::Value) -> Event {
    Event {
        id: crate::id::v7(),
        event_type: "person.created".into(),
        tenant_id: None,
        subject: None,
        channels: vec![],
        data,
        is_test: false,
        created_at: Utc::now(),
    }
}

fn target() -> Target {
    Target {
        webhook_id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        url: "http://127.0.0.1:9/hook".into(),
        secrets_sealed: vec!["hw1:00000000:AAAA".into()],
        overlap_ends_at: None,
        auth_header: None,
        headers: BTreeMap::new(),
        timeout_seconds: 30,
        retry_policy: RetryPolicy {
            strategy: Strategy::Exponential,
            max_retries: 5,
            interval_seconds: 5,
            max_age_seconds: 86400,
        },
        rate_limit_per_second: None,
        modified_at: None,
    }
}

/// The fields `proto/<name>.schema.json` requires at its top level.
fn required(name: &str) -> Vec<String> {
    let path = format!("{}/../../proto/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn assert_agrees(name: &str, message: &impl Serialize) {
    let value = serde_json::to_value(message).unwrap();
    let object = value.as_object().unwrap();
    for field in required(name) {
        assert!(
            object.contains_key(&field),
            "{name}: `{field}` required by the schema is missing"
        );
    }
    assert_eq!(object["kind"], name);
}

#[test]
fn messages_agree_with_their_schemas_in_proto() {
    let now = Utc::now();
    let task = TaskMessage::V1(DeliveryTask {
        delivery_id: Uuid::nil(),
        event_id: Uuid::nil(),
        event_type: "person.created".into(),
        subject: None,
        is_test: false,
        event_created_at: now,
        attempts: 0,
        first_attempt_at: None,
        not_before: None,
        target: target(),
        body: "{}".into(),
        traceparent: None,
        parked: 0,
        resent_at: Some(now),
        in_line: true,
        bulk_lane: false,
    });
    assert_agrees("delivery_task.v1", &task);
    let mut group = DeliveryGroup::new(&event(serde_json::json!({})), "{}".into(), None);
    group.deliveries.push(GroupMember {
        delivery_id: Uuid::nil(),
        target: target(),
    });
    assert_agrees("delivery_group.v1", &TaskMessage::Group(group.clone()));
    assert_agrees(
        "delivery_batch.v1",
        &TaskMessage::batch(vec![task, TaskMessage::Group(group)]),
    );
    let event = event(serde_json::json!({}));
    assert_agrees(
        "event_routed.v1",
        &LedgerMessage::EventRouted {
            event,
            deliveries: vec![],
        },
    );
    let subscription = Subscription {
        events: vec!["*".into()],
        channels: vec![],
        is_active: true,
        is_test: false,
        modified_at: now,
        target: target(),
        ordered: true,
    };
    assert_agrees(
        "subscription_upserted.v1",
        &ChangeNotice::Upserted {
            subscription: Box::new(subscription),
        },
    );
    assert_agrees(
        "subscription_deleted.v1",
        &ChangeNotice::Deleted {
            webhook_id: Uuid::nil(),
            deleted_at: now,
        },
    );
    let event_type = CatalogType {
        value: "person.created".into(),
        schema: None,
    };
    assert_agrees(
        "event_type_upserted.v1",
        &ChangeNotice::EventTypeUpserted { event_type },
    );
    assert_agrees(
        "events_expunged.v1",
        &ChangeNotice::Expunged {
            event_ids: vec![Uuid::nil()],
        },
    );
    assert_agrees(
        "delivery_resent.v1",
        &ChangeNotice::Resent {
            delivery_id: Uuid::nil(),
            at: now,
        },
    );
    let token = ProducerGrant {
        id: Uuid::nil(),
        name: "billing".into(),
        token_hash: "00".repeat(32),
        event_types: Some(vec!["invoice.*".into()]),
        tenant_ids: None,
    };
    assert_agrees(
        "producer_token_upserted.v1",
        &ChangeNotice::ProducerTokenUpserted { token },
    );
    assert_agrees(
        "producer_token_revoked.v1",
        &ChangeNotice::ProducerTokenRevoked { id: Uuid::nil() },
    );
    assert_agrees(
        "tenant_limit_set.v1",
        &ChangeNotice::TenantLimitSet(TenantLimit {
            tenant_id: Uuid::nil(),
            max_deliveries_per_second: Some(50),
        }),
    );
}

#[test]
fn the_rotated_out_secret_signs_until_the_overlap_ends_and_never_after() {
    let end = Utc::now();
    let mut t = target();
    t.secrets_sealed = vec!["new".into(), "old".into()];
    t.overlap_ends_at = Some(end);
    let before = end - chrono::Duration::milliseconds(1);
    assert_eq!(t.signing_secrets(before), ["new", "old"]);
    assert_eq!(t.signing_secrets(end), ["new"]);
    assert_eq!(t.signing_secrets(end + chrono::Duration::hours(1)), ["new"]);
    t.overlap_ends_at = None;
    assert_eq!(t.signing_secrets(end + chrono::Duration::hours(1)), ["new", "old"]);
}

#[test]
fn the_request_body_is_the_contract_shape() {
    let e = event(serde_json::json!({"a": 1}));
    let v: serde_json::Value = serde_json::from_str(&e.request_body()).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 4);
    assert_eq!(v["id"], e.id.to_string());
    assert_eq!(v["type"], "person.created");
    assert_eq!(v["data"], serde_json::json!({"a": 1}));
    assert!(chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).is_ok());
}

#[test]
fn a_ledger_batch_round_trips() {
    let event = event(serde_json::json!({}));
    let one = LedgerMessage::EventRouted {
        event,
        deliveries: vec![],
    };
    assert_eq!(LedgerMessage::batch(vec![one.clone()]), one);
    let two = LedgerMessage::batch(vec![one.clone(), one.clone()]);
    assert_agrees("ledger_batch.v1", &two);
    let back: LedgerMessage = serde_json::from_str(&serde_json::to_string(&two).unwrap()).unwrap();
    assert_eq!(back, two);
}

#[test]
fn a_group_becomes_the_tasks_its_members_would_have_been_sent_as() {
    let e = event(serde_json::json!({"n": 1}));
    let (a, b) = (crate::id::v7(), crate::id::v7());
    let mut group = DeliveryGroup::new(&e, e.request_body(), Some("00-trace".into()));
    for id in [a, b] {
        let mut t = target();
        t.webhook_id = id;
        group.deliveries.push(GroupMember {
            delivery_id: id,
            target: t,
        });
    }
    let wire = serde_json::to_vec(&TaskMessage::Group(group)).unwrap();
    let tasks = serde_json::from_slice::<TaskMessage>(&wire).unwrap().into_tasks();
    assert_eq!(tasks.len(), 2);
    for (task, id) in tasks.iter().zip([a, b]) {
        let mut t = target();
        t.webhook_id = id;
        let mut alone = DeliveryTask::new(id, &e, t, e.request_body(), 0);
        alone.traceparent = Some("00-trace".into());
        assert_eq!(*task, alone);
    }
}

#[test]
fn a_batch_becomes_the_tasks_of_its_entries_in_order() {
    let (first, second) = (event(serde_json::json!({"n": 1})), event(serde_json::json!({"n": 2})));
    let alone = DeliveryTask::new(crate::id::v7(), &first, target(), first.request_body(), 0);
    let mut group = DeliveryGroup::new(&second, second.request_body(), None);
    let members = [crate::id::v7(), crate::id::v7()];
    for id in members {
        group.deliveries.push(GroupMember {
            delivery_id: id,
            target: target(),
        });
    }
    let one = TaskMessage::V1(alone.clone());
    assert_eq!(
        TaskMessage::batch(vec![one.clone()]),
        one,
        "a batch of one is its entry"
    );
    let batch = TaskMessage::batch(vec![one, TaskMessage::Group(group)]);
    assert_eq!(batch.deliveries(), 3);
    let wire = serde_json::to_vec(&batch).unwrap();
    let tasks = serde_json::from_slice::<TaskMessage>(&wire).unwrap().into_tasks();
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.delivery_id).collect();
    assert_eq!(ids, [alone.delivery_id, members[0], members[1]]);
    assert_eq!(tasks[0], alone);
    assert_eq!(
        tasks[1].body,
        second.request_body(),
        "a group's members carry their own event"
    );
    assert_eq!(tasks[2].event_id, second.id);
}

#[test]
fn a_message_decodes_whether_kind_comes_first_or_not() {
    let e = event(serde_json::json!({"n": [1, 2]}));
    let mut group = DeliveryGroup::new(&e, e.request_body(), None);
    group.deliveries.push(GroupMember {
        delivery_id: crate::id::v7(),
        target: target(),
    });
    let task = TaskMessage::batch(vec![TaskMessage::Group(group.clone()), TaskMessage::Group(group)]);
    let routed = LedgerMessage::EventRouted {
        event: e,
        deliveries: vec![RoutedDelivery {
            delivery_id: crate::id::v7(),
            webhook_id: crate::id::v7(),
            tenant_id: crate::id::v7(),
        }],
    };
    let ledger = LedgerMessage::batch(vec![routed.clone(), routed]);
    // As our encoders write it: `kind` first.
    let wire = serde_json::to_string(&task).unwrap();
    assert!(wire.starts_with(r#"{"kind":"delivery_batch.v1","#), "{wire}");
    assert_eq!(serde_json::from_str::<TaskMessage>(&wire).unwrap(), task);
    // From another encoder: keys in alphabetical order (serde_json's `Map`), so `kind` is
    // not first, here and in the batch's entries.
    fn kind_elsewhere(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(o) => {
                serde_json::Value::Object(o.into_iter().map(|(k, v)| (k, kind_elsewhere(v))).collect())
            }
            serde_json::Value::Array(a) => a.into_iter().map(kind_elsewhere).collect(),
            other => other,
        }
    }
    for original in [
        serde_json::to_value(&task).unwrap(),
        serde_json::to_value(&ledger).unwrap(),
    ] {
        let moved = serde_json::to_string(&kind_elsewhere(original.clone())).unwrap();
        assert!(!moved.starts_with(r#"{"kind""#), "{moved}");
        let back = match original["kind"].as_str().unwrap() {
            "delivery_batch.v1" => serde_json::to_value(serde_json::from_str::<TaskMessage>(&moved).unwrap()),
            _ => serde_json::to_value(serde_json::from_str::<LedgerMessage>(&moved).unwrap()),
        };
        assert_eq!(back.unwrap(), original);
    }
    let missing = serde_json::from_str::<LedgerMessage>(r#"{"entries":[]}"#).unwrap_err();
    assert!(missing.to_string().contains("missing field `kind`"), "{missing}");
    let wrong = serde_json::from_str::<TaskMessage>(r#"{"kind":"delivery_task.v1","delivery_id":1}"#).unwrap_err();
    assert!(wrong.to_string().contains("expected a formatted UUID"), "{wrong}");
}

#[test]
fn an_unknown_version_does_not_decode() {
    let err = serde_json::from_str::<TaskMessage>(r#"{"kind":"delivery_task.v9"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
}

#[test]
fn a_batch_of_encoded_messages_is_the_batch_serde_writes() {
    let e = event(serde_json::json!({"n": 1}));
    let mut group = DeliveryGroup::new(&e, e.request_body(), None);
    group.deliveries.push(GroupMember {
        delivery_id: crate::id::v7(),
        target: target(),
    });
    let entries = vec![TaskMessage::Group(group.clone()), TaskMessage::Group(group)];
    let encoded: Vec<Vec<u8>> = entries.iter().map(|m| serde_json::to_vec(m).unwrap()).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let batch = TaskMessage::encoded_batch(&refs);
    assert_eq!(batch, serde_json::to_vec(&TaskMessage::batch(entries.clone())).unwrap());
    assert_eq!(serde_json::from_slice::<TaskMessage>(&batch).unwrap().deliveries(), 2);
    // One message stays itself, as `batch` keeps it.
    assert_eq!(TaskMessage::encoded_batch(&refs[..1]), encoded[0]);
}
