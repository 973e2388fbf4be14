// @generated automatically by Diesel CLI.

diesel::table! {
    advisories (id) {
        id -> Text,
        public_id -> Nullable<Text>,
        status -> Text,
        draft -> Text,
        title -> Text,
        severity -> Nullable<Text>,
        score_tenths -> Nullable<Integer>,
        emergency -> Bool,
        known_exploited -> Bool,
        fix_deadline -> Nullable<Timestamp>,
        latest_revision -> Integer,
        first_published_at -> Nullable<Timestamp>,
        last_published_at -> Nullable<Timestamp>,
        search_text -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        tlp -> Text,
    }
}

diesel::table! {
    advisory_counters (year) {
        year -> Integer,
        last_number -> Integer,
    }
}

diesel::table! {
    advisory_cves (advisory_id, cve) {
        advisory_id -> Text,
        cve -> Text,
    }
}

diesel::table! {
    advisory_products (advisory_id, product_id) {
        advisory_id -> Text,
        product_id -> Text,
    }
}

diesel::table! {
    advisory_readers (advisory_id, customer_id) {
        advisory_id -> Text,
        customer_id -> Text,
    }
}

diesel::table! {
    advisory_revisions (advisory_id, revision) {
        advisory_id -> Text,
        revision -> Integer,
        status -> Text,
        published_at -> Timestamp,
        change_summary -> Text,
        document -> Text,
        signature -> Text,
        key_id -> Text,
        csaf -> Text,
        csaf_signature -> Nullable<Text>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        label -> Text,
        lookup -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    customers (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        created_at -> Timestamp,
        pull_schedule -> Nullable<Text>,
    }
}

diesel::table! {
    device_labels (device_id, name) {
        device_id -> Text,
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    device_offers (device_id, patch_id) {
        device_id -> Text,
        patch_id -> Text,
        first_offered_at -> Timestamp,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        customer_id -> Text,
        product_id -> Text,
        name -> Text,
        platform -> Nullable<Text>,
        labels -> Text,
        token_lookup -> Text,
        token_hash -> Text,
        enrollment_token_id -> Nullable<Text>,
        version -> Nullable<Text>,
        image_sha256 -> Nullable<Text>,
        version_source -> Nullable<Text>,
        latest_observation_id -> Nullable<Text>,
        last_seen_at -> Nullable<Timestamp>,
        report_patch_id -> Nullable<Text>,
        report_state -> Nullable<Text>,
        report_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        decommissioned_at -> Nullable<Timestamp>,
        change_seq -> BigInt,
        head_age_s -> Nullable<BigInt>,
        stale_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    enrollment_tokens (id) {
        id -> Text,
        customer_id -> Text,
        label -> Text,
        lookup -> Text,
        secret_hash -> Text,
        max_uses -> Integer,
        uses -> Integer,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    entitlements (customer_id, product_id) {
        customer_id -> Text,
        product_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    device_tallies (id) {
        id -> BigInt,
        customer_id -> Text,
        product_id -> Text,
        version -> Nullable<Text>,
        report_state -> Nullable<Text>,
        report_patch_id -> Nullable<Text>,
        devices -> BigInt,
    }
}

diesel::table! {
    exposure_history (advisory_id, customer_id, recorded_at) {
        advisory_id -> Text,
        customer_id -> Text,
        recorded_at -> Timestamp,
        affected -> BigInt,
        fixed -> BigInt,
        unaffected -> BigInt,
        unknown -> BigInt,
    }
}

diesel::table! {
    fleet_state (id) {
        id -> Integer,
        devices_generation -> BigInt,
        catalogue_generation -> BigInt,
    }
}

diesel::table! {
    install_reports (id) {
        id -> Text,
        device_id -> Text,
        patch_id -> Text,
        state -> Text,
        version -> Nullable<Text>,
        message -> Nullable<Text>,
        reported_at -> Timestamp,
        times -> Integer,
        last_reported_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    log_entries (idx) {
        idx -> BigInt,
        kind -> Text,
        subject -> Text,
        actor -> Text,
        customer_id -> Nullable<Text>,
        leaf -> Text,
        leaf_hash -> Binary,
        opening -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    log_heads (sequence) {
        sequence -> BigInt,
        tree_size -> BigInt,
        root_hash -> Binary,
        signed_at -> Timestamp,
        expires_at -> Timestamp,
        key_id -> Text,
        checkpoint -> Text,
        signature -> Text,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    log_cosignatures (sequence, witness) {
        sequence -> BigInt,
        witness -> Text,
        line -> Text,
        cosigned_at -> Timestamp,
    }
}

diesel::table! {
    log_pending (id) {
        id -> BigInt,
        kind -> Text,
        subject -> Text,
        actor -> Text,
        customer_id -> Nullable<Text>,
        leaf -> Text,
        leaf_hash -> Binary,
        opening -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    log_nodes (id) {
        id -> BigInt,
        hash -> Binary,
    }
}

diesel::table! {
    log_state (id) {
        id -> Integer,
        size -> BigInt,
    }
}

diesel::table! {
    observations (id) {
        id -> Text,
        device_id -> Text,
        version -> Text,
        image_sha256 -> Nullable<Text>,
        source -> Text,
        last_source -> Text,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        times -> BigInt,
    }
}

diesel::table! {
    patch_advisories (patch_id, advisory_id) {
        patch_id -> Text,
        advisory_id -> Text,
    }
}

diesel::table! {
    patch_uploads (patch_id) {
        patch_id -> Text,
        storage_key -> Text,
        multipart_id -> Nullable<Text>,
        parts -> Text,
        size -> BigInt,
        sha256 -> Nullable<Text>,
        received -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    patches (id) {
        id -> Text,
        product_id -> Text,
        version -> Text,
        platform -> Nullable<Text>,
        applies_to -> Text,
        filename -> Text,
        expected_sha256 -> Nullable<Text>,
        sha256 -> Nullable<Text>,
        size -> Nullable<BigInt>,
        state -> Text,
        signature -> Nullable<Text>,
        key_id -> Nullable<Text>,
        yank_reason -> Nullable<Text>,
        created_at -> Timestamp,
        uploaded_at -> Nullable<Timestamp>,
        published_at -> Nullable<Timestamp>,
        yanked_at -> Nullable<Timestamp>,
        rollback -> Bool,
    }
}

diesel::table! {
    products (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        version_scheme -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sealing_key_check (id) {
        id -> Integer,
        sealed -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        secret_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    signing_keys (key_id) {
        key_id -> Text,
        public_key -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        introduced_by -> Nullable<Text>,
        statement -> Nullable<Text>,
        statement_signature -> Nullable<Text>,
        openpgp_key -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        customer_id -> Nullable<Text>,
        created_at -> Timestamp,
        password_change_required -> Bool,
    }
}

diesel::table! {
    anomalies (id) {
        id -> Text,
        customer_id -> Text,
        device_id -> Text,
        kind -> Text,
        detail -> Text,
        version -> Nullable<Text>,
        image_sha256 -> Nullable<Text>,
        dedupe_key -> Text,
        detected_at -> Timestamp,
        acknowledged_by -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamp>,
        ack_comment -> Nullable<Text>,
        occurrences -> Integer,
        last_detected_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    device_pulls (device_id) {
        device_id -> Text,
        customer_id -> Text,
        url -> Text,
        schedule -> Nullable<Text>,
        token_sealed -> Nullable<Text>,
        due_at -> Nullable<Timestamp>,
        lease_holder -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        failures -> Integer,
        unreachable_since -> Nullable<Timestamp>,
        last_attempt_at -> Nullable<Timestamp>,
        last_success_at -> Nullable<Timestamp>,
        last_failure -> Nullable<Text>,
    }
}

diesel::table! {
    pull_failures (id) {
        id -> Text,
        device_id -> Text,
        reason -> Text,
        detail -> Text,
        first_at -> Timestamp,
        last_at -> Timestamp,
        times -> BigInt,
    }
}

diesel::table! {
    release_images (id) {
        id -> Text,
        product_id -> Text,
        version -> Text,
        platform -> Text,
        image_sha256 -> Text,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        give_up_at -> Timestamp,
        lease_holder -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        last_attempt_at -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        customer_id -> Text,
        event_type -> Text,
        payload -> Text,
        dedupe_key -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        customer_id -> Text,
        url -> Text,
        events -> Text,
        secret_sealed -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    maintenance_windows (customer_id, position) {
        customer_id -> Text,
        position -> Integer,
        spec -> Text,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    install_places (customer_id, window_position, device_id) {
        customer_id -> Text,
        window_position -> Integer,
        device_id -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    emergency_policies (customer_id) {
        customer_id -> Text,
        ignore_windows -> Bool,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rollouts (id) {
        id -> Text,
        patch_id -> Text,
        state -> Text,
        current_wave -> Nullable<Integer>,
        reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        emergency_lane -> Bool,
    }
}

diesel::table! {
    rollout_waves (rollout_id, position) {
        rollout_id -> Text,
        position -> Integer,
        spec -> Text,
        opened_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    rollout_members (rollout_id, device_id) {
        rollout_id -> Text,
        device_id -> Text,
        wave -> Integer,
        joined_at -> Timestamp,
    }
}

diesel::table! {
    rollout_customers (rollout_id, customer_id) {
        rollout_id -> Text,
        customer_id -> Text,
        hold -> Bool,
        accelerate -> Bool,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rollout_history (id) {
        id -> Text,
        rollout_id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        state -> Text,
        wave -> Nullable<Integer>,
        reason -> Nullable<Text>,
    }
}

diesel::joinable!(anomalies -> devices (device_id));
diesel::joinable!(device_pulls -> devices (device_id));
diesel::joinable!(pull_failures -> devices (device_id));
diesel::joinable!(release_images -> products (product_id));
diesel::joinable!(rollout_members -> devices (device_id));
diesel::joinable!(rollout_members -> rollouts (rollout_id));
diesel::joinable!(rollouts -> patches (patch_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(advisory_cves -> advisories (advisory_id));
diesel::joinable!(advisory_products -> advisories (advisory_id));
diesel::joinable!(advisory_products -> products (product_id));
diesel::joinable!(advisory_readers -> advisories (advisory_id));
diesel::joinable!(advisory_readers -> customers (customer_id));
diesel::joinable!(advisory_revisions -> advisories (advisory_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(device_labels -> devices (device_id));
diesel::joinable!(device_offers -> devices (device_id));
diesel::joinable!(device_offers -> patches (patch_id));
diesel::joinable!(devices -> customers (customer_id));
diesel::joinable!(devices -> enrollment_tokens (enrollment_token_id));
diesel::joinable!(devices -> patches (report_patch_id));
diesel::joinable!(devices -> products (product_id));
diesel::joinable!(enrollment_tokens -> customers (customer_id));
diesel::joinable!(entitlements -> customers (customer_id));
diesel::joinable!(entitlements -> products (product_id));
diesel::joinable!(exposure_history -> advisories (advisory_id));
diesel::joinable!(exposure_history -> customers (customer_id));
diesel::joinable!(install_reports -> devices (device_id));
diesel::joinable!(install_reports -> patches (patch_id));
diesel::joinable!(observations -> devices (device_id));
diesel::joinable!(patch_advisories -> advisories (advisory_id));
diesel::joinable!(patch_advisories -> patches (patch_id));
diesel::joinable!(patch_uploads -> patches (patch_id));
diesel::joinable!(patches -> products (product_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(users -> customers (customer_id));

diesel::allow_tables_to_appear_in_same_query!(
    advisories,
    advisory_counters,
    advisory_cves,
    advisory_products,
    advisory_readers,
    advisory_revisions,
    anomalies,
    api_tokens,
    customers,
    device_labels,
    device_offers,
    device_pulls,
    device_tallies,
    devices,
    emergency_policies,
    enrollment_tokens,
    entitlements,
    exposure_history,
    fleet_state,
    install_places,
    install_reports,
    log_entries,
    log_cosignatures,
    log_heads,
    log_nodes,
    log_pending,
    log_state,
    maintenance_windows,
    observations,
    patch_advisories,
    patch_uploads,
    patches,
    products,
    pull_failures,
    release_images,
    rollout_customers,
    rollout_history,
    rollout_members,
    rollout_waves,
    rollouts,
    sealing_key_check,
    sessions,
    signing_keys,
    users,
    webhook_deliveries,
    webhook_events,
    webhooks,
);
