//! The tables of `migrations/`, for diesel's query builder. Keep in step with the migrations
//! (`diesel print-schema` prints the same from a migrated database).

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        max_deliveries_per_second -> Nullable<Int4>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        key_hash -> Bytea,
        key_prefix -> Text,
        scopes -> Array<Text>,
        webhooks_enabled -> Bool,
        max_webhooks -> Int4,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    event_types (value) {
        value -> Text,
        label -> Text,
        description -> Text,
        schema -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        archived -> Bool,
        example -> Nullable<Jsonb>,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        api_key_id -> Nullable<Uuid>,
        name -> Text,
        description -> Text,
        url -> Text,
        events -> Array<Text>,
        channels -> Array<Text>,
        is_active -> Bool,
        is_test -> Bool,
        header_name -> Nullable<Text>,
        prefix -> Nullable<Text>,
        auth_secret_sealed -> Nullable<Text>,
        auth_secret_last4 -> Nullable<Text>,
        secret_sealed -> Text,
        previous_secret_sealed -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        headers -> Jsonb,
        timeout_seconds -> Int4,
        retry_policy -> Jsonb,
        rate_limit_per_second -> Nullable<Int4>,
        failure_count -> Int4,
        last_triggered_at -> Nullable<Timestamptz>,
        last_success_at -> Nullable<Timestamptz>,
        last_failure_at -> Nullable<Timestamptz>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamptz,
        modified_at -> Timestamptz,
        failing_since -> Nullable<Timestamptz>,
        ordering -> Text,
    }
}

diesel::table! {
    rate_limits (bucket) {
        bucket -> Text,
        tat -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        event_type -> Text,
        subject -> Nullable<Text>,
        channels -> Array<Text>,
        payload -> Jsonb,
        is_test -> Bool,
        created_at -> Timestamptz,
        expunged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Uuid,
        webhook_id -> Uuid,
        tenant_id -> Uuid,
        event_id -> Uuid,
        event_type -> Text,
        subject -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        response_status -> Nullable<Int4>,
        response_body -> Nullable<Text>,
        error -> Nullable<Text>,
        duration_ms -> Nullable<Int4>,
        is_test -> Bool,
        created_at -> Timestamptz,
        last_attempt_at -> Nullable<Timestamptz>,
        next_retry_at -> Nullable<Timestamptz>,
        signature -> Nullable<Text>,
    }
}

diesel::table! {
    delivery_attempts (delivery_id, attempt) {
        delivery_id -> Uuid,
        attempt -> Int4,
        attempted_at -> Timestamptz,
        response_status -> Nullable<Int4>,
        error -> Nullable<Text>,
        duration_ms -> Int4,
        signature -> Text,
    }
}

diesel::table! {
    deleted_tenants (tenant_id) {
        tenant_id -> Uuid,
        deleted_at -> Timestamptz,
    }
}

diesel::table! {
    event_erasures (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        event_id -> Nullable<Uuid>,
        subject -> Nullable<Text>,
        requested_at -> Timestamptz,
    }
}

diesel::table! {
    delivery_resends (delivery_id) {
        delivery_id -> Uuid,
        resent_at -> Timestamptz,
    }
}

diesel::table! {
    portal_sessions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        api_key_id -> Nullable<Uuid>,
        read_only -> Bool,
        token_hash -> Bytea,
        session_hash -> Nullable<Bytea>,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        opened_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    listen_sessions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        webhook_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        at -> Timestamptz,
        tenant_id -> Nullable<Uuid>,
        actor_kind -> Text,
        actor_id -> Nullable<Text>,
        actor_name -> Nullable<Text>,
        action -> Text,
        resource_type -> Text,
        resource_id -> Text,
        changes -> Jsonb,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    producer_tokens (id) {
        id -> Uuid,
        name -> Text,
        token_hash -> Bytea,
        token_prefix -> Text,
        event_types -> Nullable<Array<Text>>,
        tenant_ids -> Nullable<Array<Uuid>>,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    admin_tokens (id) {
        id -> Uuid,
        name -> Text,
        token_hash -> Bytea,
        token_prefix -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    line_waiting (webhook_id, line, seq) {
        seq -> Int8,
        webhook_id -> Uuid,
        line -> Text,
        tenant_id -> Uuid,
        delivery_id -> Uuid,
        task -> Bytea,
        queued_at -> Timestamptz,
    }
}

diesel::table! {
    delivery_lines (webhook_id, line) {
        webhook_id -> Uuid,
        line -> Text,
        tenant_id -> Uuid,
        busy_with -> Uuid,
        busy_task -> Bytea,
        busy_since -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    line_waiting,
    delivery_lines,
    tenants,
    api_keys,
    event_types,
    webhooks,
    events,
    deliveries,
    delivery_attempts,
    rate_limits,
    deleted_tenants,
    event_erasures,
    delivery_resends,
    portal_sessions,
    listen_sessions,
    audit_log,
    producer_tokens,
    admin_tokens,
);
