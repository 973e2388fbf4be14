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
    }
}

diesel::joinable!(advisory_cves -> advisories (advisory_id));
diesel::joinable!(advisory_products -> advisories (advisory_id));
diesel::joinable!(advisory_products -> products (product_id));
diesel::joinable!(advisory_revisions -> advisories (advisory_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(entitlements -> customers (customer_id));
diesel::joinable!(entitlements -> products (product_id));
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
    advisory_revisions,
    api_tokens,
    customers,
    entitlements,
    patch_advisories,
    patch_uploads,
    patches,
    products,
    sessions,
    signing_keys,
    users,
);
