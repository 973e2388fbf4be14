//! What follows events, in one place: each reaction to an event is written here
//! once, instead of in every operation that causes the event. Inside the
//! transaction of the event: an advisory published or revised is announced to the
//! customers whose fleet it concerns (with an `emergency` event where it affects
//! devices). After the commit: an event that changes what devices may be offered
//! brings this instance's fleet copy up to date and is covered by a freshly signed
//! tree head at once, so devices see it on their next poll.
//!
//! The anomaly checks react to what devices run, which the observation flush
//! writes; they stay with it, in the flush's transaction.

use chrono::TimeDelta;

use crate::config::Config;
use crate::db::DbConnection;
use crate::domain::event::{Event, Revision};
use crate::domain::log::SignedHead;
use crate::domain::EventType;
use crate::services::advisories::{find, KnownProducts};
use crate::services::fleet::exposure::advisory_counts;
use crate::services::{fleet, log, webhooks, Reactions, ServiceError, Services};

/// The reactions of this server.
pub struct Effects {
    /// Where advisories are read, for the links in announcements.
    public_url: String,
    /// When an install step counts as stalled, in the exposure announced.
    stall: TimeDelta,
}

impl Effects {
    pub fn new(config: &Config) -> anyhow::Result<Effects> {
        Ok(Effects {
            public_url: config.url(""),
            stall: TimeDelta::from_std(config.install_stall_after)?,
        })
    }

    /// Queues `kind` (and `emergency`, for an emergency advisory that affects
    /// devices) for every customer whose fleet the revision concerns: devices
    /// affected, fixed or of unknown version.
    fn announce(&self, conn: &mut DbConnection, revision: &Revision, kind: EventType) -> Result<(), ServiceError> {
        let catalogue = KnownProducts::load(conn)?;
        let record = find(conn, &revision.public_id)?;
        let Some(counts) = advisory_counts(conn, &catalogue, record, self.stall)? else {
            return Ok(());
        };
        for (customer, c) in &counts.customers {
            if c.concerned() + c.unknown == 0 {
                continue;
            }
            let data = serde_json::json!({
                "advisory": {
                    "id": counts.public_id,
                    "revision": revision.revision,
                    "title": counts.title,
                    "emergency": counts.emergency,
                    "fix_deadline": counts.fix_deadline.map(crate::domain::advisory::rfc3339),
                    "url": format!("{}/advisories/{}", self.public_url, counts.public_id),
                },
                "exposure": c,
            });
            webhooks::emit(conn, customer, kind, data.clone(), None)?;
            if counts.emergency && c.affected > 0 {
                let key = format!("emergency:{}:{}:{customer}", counts.public_id, revision.revision);
                webhooks::emit(conn, customer, EventType::Emergency, data, Some(key))?;
            }
        }
        Ok(())
    }
}

impl Reactions for Effects {
    fn within(&self, conn: &mut DbConnection, events: &[Event]) -> Result<(), ServiceError> {
        for event in events {
            match event {
                Event::AdvisoryPublished(revision) => self.announce(conn, revision, EventType::AdvisoryPublished)?,
                Event::AdvisoryRevised(revision) => self.announce(conn, revision, EventType::AdvisoryRevised)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn after<'a>(
        &'a self,
        services: &'a Services,
        events: &'a [Event],
    ) -> futures_util::future::BoxFuture<'a, Result<Option<SignedHead>, ServiceError>> {
        Box::pin(async move {
            if !events.iter().any(Event::changes_offers) {
                return Ok(None);
            }
            fleet::refresh(services).await;
            Ok(Some(log::sign_now(services).await?))
        })
    }
}
