//! The tree head of each answer, checked against the one the agent holds: signed
//! by a trusted key not declared compromised for it, cosigned by the witnesses'
//! quorum when the agent has a witness policy, not expired (freeze), not
//! older (rollback), and consistent with the one held (not a fork); the consistency
//! proof comes with the answer or is fetched.

use anyhow::Context;

use super::answers::answer;
use super::Agent;
use crate::api::device::PollResponse;
use crate::api::log::{parse_proof, ConsistencyProof, SignedHead};
use crate::domain::log::TreeHead;
use crate::domain::merkle::verify_consistency;

impl Agent {
    /// The newest tree head this agent accepted, verified.
    pub fn head(&self) -> Option<&TreeHead> {
        self.head.as_ref()
    }

    /// Checks the tree head of a poll answer against the one held: signed by a
    /// trusted key that was not declared compromised before this size, not expired
    /// (a frozen answer), not older (a rollback), and consistent with the one held
    /// (not a fork); and any rollout's hold the answer claims is in it. Keeps it
    /// when it is good; returns why it is refused otherwise.
    pub(super) async fn accept_head(&mut self, answer: &PollResponse) -> anyhow::Result<Result<TreeHead, String>> {
        let Some(signed) = &answer.log_head else {
            return Ok(Err("refused: the answer carries no signed tree head".into()));
        };
        let mut verified = signed.verify(|id| self.keyring.public_key(id));
        if verified.as_ref().is_err_and(|e| e.contains("not trusted")) && self.learn_keys().await? {
            verified = signed.verify(|id| self.keyring.public_key(id));
        }
        let head = match verified {
            Ok(head) => head,
            Err(why) => return Ok(Err(format!("refused: {why}"))),
        };
        if let Some(after) = self.keyring.compromised_after(&signed.key_id) {
            if head.tree_size > after {
                return Ok(Err(format!(
                    "refused (compromised key): the tree head of {} entries is signed by key {}, which a rotation \
                     declared compromised after {after} entries",
                    head.tree_size,
                    signed.key_id.to_uppercase()
                )));
            }
        }
        if let Some(required) = &self.config.witnesses {
            let now = chrono::Utc::now().timestamp().max(0) as u64;
            let lines = answer.log_cosignatures.as_deref().unwrap_or_default();
            if let Err(why) = required
                .policy
                .check(&signed.checkpoint, lines, now, required.max_age.as_secs())
            {
                return Ok(Err(format!(
                    "refused (witnesses): the tree head of {} entries (sequence {}): {why}",
                    head.tree_size, head.sequence
                )));
            }
        }
        if head.expires_at <= chrono::Utc::now() {
            return Ok(Err(format!(
                "refused (freeze): the tree head of sequence {} expired at {}",
                head.sequence,
                head.expires_at.to_rfc3339()
            )));
        }
        if let Some(held) = &self.head {
            if let Err(why) = self.follows(held, &head, signed, answer).await? {
                return Ok(Err(why));
            }
        }
        // A fix held back must be held back by a rollout the log shows in that
        // state; an answer that claims otherwise is refused before anything of it
        // is kept.
        if let Some(held) = &answer.held {
            if let Err(why) = super::verify::check_held(&head, held) {
                return Ok(Err(format!(
                    "refused: the answer says a rollout holds the update back, but {why}"
                )));
            }
        }
        if self.state.log_head.as_ref() != Some(signed) {
            self.state.log_head = Some(signed.clone());
            self.save()?;
        }
        self.set_fresh(head.timestamp);
        self.head = Some(head.clone());
        Ok(Ok(head))
    }

    /// Whether `head` may follow `held`: the same or a later sequence, no fewer
    /// entries, and a consistency proof from `held` when it has more.
    pub(super) async fn follows(
        &self,
        held: &TreeHead,
        head: &TreeHead,
        signed: &SignedHead,
        polled: &PollResponse,
    ) -> anyhow::Result<Result<(), String>> {
        if head.origin != held.origin {
            return Ok(Err(format!(
                "refused (fork): the tree head is of log `{}`, not of `{}`",
                head.origin, held.origin
            )));
        }
        if head.sequence < held.sequence || head.tree_size < held.tree_size {
            return Ok(Err(format!(
                "refused (rollback): the tree head (sequence {}, {} entries) is older than the one already seen (sequence {}, {} entries)",
                head.sequence, head.tree_size, held.sequence, held.tree_size
            )));
        }
        if head.sequence == held.sequence && (head != held || self.state.log_head.as_ref() != Some(signed)) {
            return Ok(Err(format!(
                "refused (fork): two different tree heads carry sequence {}",
                head.sequence
            )));
        }
        if head.tree_size == held.tree_size {
            if head.root_hash != held.root_hash {
                return Ok(Err(format!(
                    "refused (fork): a tree of {} entries with another root hash than the one already seen",
                    head.tree_size
                )));
            }
            return Ok(Ok(()));
        }
        let proof = match polled
            .log_consistency
            .as_ref()
            .filter(|p| p.from == held.tree_size && p.to == head.tree_size)
        {
            Some(proof) => proof.clone(),
            None => {
                let url = self.url(&format!(
                    "/api/v1/log/proof/consistency?from={}&to={}",
                    held.tree_size, head.tree_size
                ))?;
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .context("fetching a consistency proof")?;
                let proof: ConsistencyProof = answer(response, "the consistency proof").await?;
                proof
            }
        };
        let checked = parse_proof(&proof.proof).and_then(|hashes| {
            verify_consistency(
                held.tree_size,
                head.tree_size,
                &held.root_hash,
                &head.root_hash,
                &hashes,
            )
            .map_err(|e| e.to_string())
        });
        Ok(checked.map_err(|why| {
            format!(
                "refused (fork): the tree of {} entries does not extend the one of {} already seen: {why}",
                head.tree_size, held.tree_size
            )
        }))
    }
}
