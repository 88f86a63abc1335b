//! `concordia serve --demo`: the example alliance policy, demo credentials and a few objects,
//! so a newcomer can query a working server within a minute.

use crate::auth::{hash_password, new_api_key};
use crate::model::access::Principal;
use crate::model::policy::Policy;
use crate::model::time::now_micros;
use crate::service::audit::Operator;
use crate::service::{operator, Service};
use crate::storage::credentials::NewCredential;
use crate::storage::{self, Storage, StorageError, StorageResult};

/// The example policy, built into the binary.
pub const ALLIANCE_POLICY: &str = include_str!("../examples/alliance.toml");

/// Id of the "Alliance indicators" collection in the example policy.
pub const ALLIANCE_COLLECTION: &str = "2f3d8e7a-1c4b-4e5f-9a6b-7c8d9e0f1a2b";

const SAMPLES: &[&str] = &[
    r#"{"type":"identity","spec_version":"2.1","id":"identity--b2b0e8f4-6a5c-4d3e-9f1a-2c3d4e5f6a7b","created":"2026-01-10T08:00:00.000Z","modified":"2026-01-10T08:00:00.000Z","name":"National CERT of Alpha","identity_class":"organization"}"#,
    r#"{"type":"marking-definition","spec_version":"2.1","id":"marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da","created":"2017-01-20T00:00:00.000Z","definition_type":"tlp","name":"TLP:GREEN","definition":{"tlp":"green"}}"#,
    r#"{"type":"malware","spec_version":"2.1","id":"malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b","created":"2026-01-10T08:05:00.000Z","modified":"2026-01-10T08:05:00.000Z","created_by_ref":"identity--b2b0e8f4-6a5c-4d3e-9f1a-2c3d4e5f6a7b","name":"Cryptofrost","is_family":true,"malware_types":["ransomware"],"object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}"#,
    r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2026-01-10T08:10:00.000Z","modified":"2026-01-10T08:10:00.000Z","created_by_ref":"identity--b2b0e8f4-6a5c-4d3e-9f1a-2c3d4e5f6a7b","name":"Cryptofrost C2 server","indicator_types":["malicious-activity"],"pattern":"[ipv4-addr:value = '198.51.100.23']","pattern_type":"stix","valid_from":"2026-01-10T08:10:00Z","object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}"#,
    r#"{"type":"relationship","spec_version":"2.1","id":"relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad","created":"2026-01-10T08:15:00.000Z","modified":"2026-01-10T08:15:00.000Z","created_by_ref":"identity--b2b0e8f4-6a5c-4d3e-9f1a-2c3d4e5f6a7b","relationship_type":"indicates","source_ref":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","target_ref":"malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"}"#,
    r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2026-01-10T08:10:00.000Z","modified":"2026-01-12T09:30:00.000Z","created_by_ref":"identity--b2b0e8f4-6a5c-4d3e-9f1a-2c3d4e5f6a7b","name":"Cryptofrost C2 server","description":"Second version: the server moved behind a new address.","indicator_types":["malicious-activity"],"pattern":"[ipv4-addr:value = '198.51.100.23' OR ipv4-addr:value = '203.0.113.7']","pattern_type":"stix","valid_from":"2026-01-10T08:10:00Z","object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}"#,
];

/// The demo operator's console password (`serve --demo` with the console on).
pub const DEMO_OPERATOR_PASSWORD: &str = "demo-operator-console";

/// Demo credentials: (partner, password).
pub fn demo_passwords(policy: &Policy) -> Vec<(String, String)> {
    policy.partners.iter().map(|p| (p.name.clone(), format!("demo-{}", p.name))).collect()
}

/// Loads the demo into `storage` through the operator's own doors (each recorded in the audit
/// trail): the policy, a password per partner, one API key for cert-bravo, and the sample objects
/// in "Alliance indicators", imported as cert-alpha. Returns the lines to print.
pub fn load(storage: &Storage, operator: &Operator) -> StorageResult<Vec<String>> {
    let policy = Policy::from_toml(ALLIANCE_POLICY).map_err(|e| StorageError::Conflict(e.join("; ")))?;
    let mut lines = Vec::new();
    let used = storage.read_blocking(storage::access::holds_data)?;
    if used {
        return Err(StorageError::Conflict(
            "--demo needs an empty database (it would replace the policy and add demo passwords); \
             leave out --database-url to use a fresh concordia-demo.db"
                .into(),
        ));
    }
    operator::apply_policy(storage, operator, &policy, false, false)?;
    let now = now_micros();
    for (partner, password) in demo_passwords(&policy) {
        let hash = hash_password(&password).map_err(StorageError::Conflict)?;
        let new = NewCredential {
            partner: &partner,
            kind: "password",
            lookup: None,
            secret_hash: &hash,
            label: Some("demo"),
            now,
            expires_at: None,
        };
        operator::add_credential(storage, operator, &new)?;
        lines.push(format!("  {partner:<18} password {password}"));
    }
    let (key, lookup, digest) = new_api_key();
    let new = NewCredential {
        partner: "cert-bravo",
        kind: "api_key",
        lookup: Some(&lookup),
        secret_hash: &digest,
        label: Some("demo"),
        now,
        expires_at: None,
    };
    operator::add_credential(storage, operator, &new)?;
    lines.push(format!("  cert-bravo         API key  {key}"));
    let service = Service::offline(storage.clone(), operator.audit).map_err(StorageError::Conflict)?;
    let alpha = storage.read_blocking(|c| storage::access::partner_id(c, "cert-alpha"))?;
    let alpha = Principal::Partner { id: alpha, name: "cert-alpha".into() };
    let samples: Vec<String> = SAMPLES.iter().map(|s| (*s).to_owned()).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StorageError::Unavailable(Box::new(e)))?;
    let fail = |e: crate::service::ServiceError| StorageError::Conflict(e.to_string());
    rt.block_on(async {
        service.refresh(true).await.map_err(fail)?;
        service.import(operator, &alpha, false, ALLIANCE_COLLECTION, samples).await.map_err(fail)
    })?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_samples_are_valid_stix() {
        let v = crate::stix::Validator::new().unwrap_or_else(|e| panic!("{e}"));
        for s in SAMPLES {
            let value: serde_json::Value = serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v.validate(&value), vec![], "{s}");
        }
    }
}
