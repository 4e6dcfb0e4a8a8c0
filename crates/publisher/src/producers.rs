//! Producer tokens: who may publish what. The registry keeps the tokens (hashed) and sends each
//! publisher their grants in the routing snapshot and in change notices; the bootstrap token of
//! the configuration (`HOOKWIRE_PRODUCER_TOKEN`) may publish anything.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hookwire_core::messages::{ChangeNotice, ProducerGrant};
use hookwire_core::patterns;
use sha2::{Digest, Sha256};

/// Who publishes a request.
#[derive(Debug, Clone)]
pub enum Producer {
    /// The configuration's token: any type, any tenant.
    Bootstrap,
    Token(Arc<ProducerGrant>),
}

impl Producer {
    /// Names the producer in logs and metrics.
    pub fn name(&self) -> &str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Token(grant) => &grant.name,
        }
    }

    /// Why this producer may not publish an event of `event_type` for `tenant_id`, if it may not.
    pub fn refusal(&self, event_type: &str, tenant_id: Option<uuid::Uuid>) -> Option<String> {
        let Self::Token(grant) = self else {
            return None;
        };
        if let Some(allowed) = &grant.event_types {
            if !allowed.iter().any(|p| patterns::matches(p, event_type)) {
                return Some(format!(
                    "the producer token `{}` may publish only {}, not `{event_type}`",
                    grant.name,
                    allowed.join(", ")
                ));
            }
        }
        if let Some(tenants) = &grant.tenant_ids {
            match tenant_id {
                Some(t) if tenants.contains(&t) => {}
                Some(t) => {
                    return Some(format!(
                        "the producer token `{}` may not publish for tenant {t}",
                        grant.name
                    ))
                }
                None => {
                    return Some(format!(
                        "the producer token `{}` publishes for named tenants only: set `tenant_id`",
                        grant.name
                    ))
                }
            }
        }
        None
    }
}

/// The live grants, by the hex SHA-256 of their token.
#[derive(Debug, Default)]
pub struct Producers {
    grants: RwLock<HashMap<String, Arc<ProducerGrant>>>,
}

/// The hex SHA-256 of a presented token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Producers {
    /// The grant of `token`, if it is live.
    pub fn find(&self, token: &str) -> Option<Arc<ProducerGrant>> {
        self.grants.read().expect("never poisoned").get(&hash(token)).cloned()
    }

    /// Holds exactly `grants` (a snapshot's).
    pub fn replace(&self, grants: Vec<ProducerGrant>) {
        let map = grants
            .into_iter()
            .map(|g| (g.token_hash.clone(), Arc::new(g)))
            .collect();
        *self.grants.write().expect("never poisoned") = map;
    }

    /// Takes in a notice about producer tokens; false for any other notice.
    pub fn apply(&self, notice: &ChangeNotice) -> bool {
        let mut grants = self.grants.write().expect("never poisoned");
        match notice {
            ChangeNotice::ProducerTokenUpserted { token } => {
                grants.insert(token.token_hash.clone(), Arc::new(token.clone()));
                true
            }
            ChangeNotice::ProducerTokenRevoked { id } => {
                grants.retain(|_, g| g.id != *id);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_publishes_its_patterns_for_its_tenants_only() {
        let tenant = uuid::Uuid::new_v4();
        let grant = ProducerGrant {
            id: uuid::Uuid::new_v4(),
            name: "billing".into(),
            token_hash: hash("t"),
            event_types: Some(vec!["invoice.*".into()]),
            tenant_ids: Some(vec![tenant]),
        };
        let producers = Producers::default();
        producers.replace(vec![grant.clone()]);
        let p = Producer::Token(producers.find("t").expect("held"));
        assert_eq!(p.refusal("invoice.paid", Some(tenant)), None);
        assert!(p.refusal("person.created", Some(tenant)).unwrap().contains("invoice.*"));
        assert!(p.refusal("invoice.paid", Some(uuid::Uuid::new_v4())).is_some());
        assert!(p.refusal("invoice.paid", None).unwrap().contains("tenant_id"));
        assert!(producers.apply(&ChangeNotice::ProducerTokenRevoked { id: grant.id }));
        assert!(producers.find("t").is_none());
        assert_eq!(Producer::Bootstrap.refusal("anything", None), None);
    }
}
