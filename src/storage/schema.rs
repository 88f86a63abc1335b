//! Diesel table definitions, in portable column types (Text, BigInt, Integer).

diesel::table! {
    meta (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    api_roots (id) {
        id -> BigInt,
        name -> Text,
        title -> Text,
        description -> Nullable<Text>,
        max_content_length -> BigInt,
    }
}

diesel::table! {
    partners (id) {
        id -> BigInt,
        name -> Text,
        title -> Nullable<Text>,
        limits -> Text,
    }
}

diesel::table! {
    partner_groups (id) {
        id -> BigInt,
        name -> Text,
        description -> Nullable<Text>,
    }
}

diesel::table! {
    group_members (group_id, partner_id) {
        group_id -> BigInt,
        partner_id -> BigInt,
    }
}

diesel::table! {
    collections (id) {
        id -> Text,
        api_root_id -> BigInt,
        title -> Text,
        description -> Nullable<Text>,
        alias -> Nullable<Text>,
        public_read -> Integer,
        sharing -> Text,
        feed -> Text,
    }
}

diesel::table! {
    grants (collection_id, group_id) {
        collection_id -> Text,
        group_id -> BigInt,
        can_read -> Integer,
        can_write -> Integer,
    }
}

diesel::table! {
    credentials (id) {
        id -> Text,
        partner_id -> BigInt,
        kind -> Text,
        lookup -> Nullable<Text>,
        secret_hash -> Text,
        label -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    objects (seq) {
        seq -> BigInt,
        collection_key -> BigInt,
        stix_id -> Text,
        stix_type -> Text,
        version -> Text,
        version_key -> Text,
        spec_version -> Text,
        date_added -> BigInt,
        is_last -> Integer,
        is_first -> Integer,
        last_any -> Integer,
        first_any -> Integer,
        spec_latest -> Integer,
        latest -> Integer,
        added_by -> BigInt,
        body -> Text,
        confidence -> Nullable<Integer>,
        created_by -> Nullable<Text>,
        tlp -> Nullable<Integer>,
        labels -> Nullable<Text>,
        valid_from -> Nullable<BigInt>,
        valid_until -> Nullable<BigInt>,
        source_mask -> BigInt,
        source_ref -> Nullable<Text>,
        target_ref -> Nullable<Text>,
    }
}

diesel::table! {
    object_tags (collection_key, tag, date_added) {
        collection_key -> BigInt,
        tag -> Text,
        date_added -> BigInt,
        seq -> BigInt,
    }
}

diesel::table! {
    collection_clock (collection_key) {
        collection_key -> BigInt,
        collection_id -> Text,
        last_date_added -> BigInt,
    }
}

diesel::table! {
    statuses (id) {
        id -> Text,
        api_root_id -> BigInt,
        partner_id -> BigInt,
        created_at -> BigInt,
        body -> Text,
    }
}

diesel::table! {
    audit_chains (id) {
        id -> BigInt,
        kind -> Text,
        name -> Text,
        started_at -> BigInt,
        head_seq -> BigInt,
        head_hash -> Text,
    }
}

diesel::table! {
    audit_blocks (id) {
        id -> BigInt,
        chain_id -> BigInt,
        seq -> BigInt,
        count -> Integer,
        first_at -> BigInt,
        last_at -> BigInt,
        partners -> Text,
        collections -> Text,
        records -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_purge (token) {
        token -> Text,
    }
}

diesel::table! {
    partner_certificates (partner_id, kind, pattern) {
        partner_id -> BigInt,
        kind -> Text,
        pattern -> Text,
    }
}

diesel::table! {
    operators (id) {
        id -> BigInt,
        name -> Text,
        password_hash -> Nullable<Text>,
        certificate -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    console_sessions (token_hash) {
        token_hash -> Text,
        operator_id -> BigInt,
        csrf -> Text,
        created_at -> BigInt,
        last_seen -> BigInt,
    }
}

diesel::table! {
    seen_certificates (fingerprint) {
        fingerprint -> Text,
        partner_id -> BigInt,
        subject -> Text,
        not_after -> BigInt,
        first_seen -> BigInt,
        last_seen -> BigInt,
    }
}

diesel::joinable!(console_sessions -> operators (operator_id));

diesel::allow_tables_to_appear_in_same_query!(
    meta,
    api_roots,
    partners,
    partner_groups,
    group_members,
    collections,
    grants,
    credentials,
    objects,
    object_tags,
    collection_clock,
    statuses,
    audit_chains,
    audit_blocks,
    audit_purge,
    partner_certificates,
    operators,
    console_sessions,
    seen_certificates,
);
