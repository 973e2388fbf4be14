//! Logging what a server published before it kept a log, once, at start.

use super::{append, records};
use crate::db::models::log::{self as rows};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::services::ServiceError;

/// Logs what was published before this server kept a log (a server upgraded to
/// it): signing keys, advisory revisions, patches and their yanking, release
/// images — each once, keys first, then in the order they were made. Runs at start;
/// returns how many entries it appended.
pub fn backfill(conn: &mut DbConnection) -> Result<usize, ServiceError> {
    use std::collections::HashSet;

    use crate::db::models::{AdvisoryRecord, PatchRecord, Product, ReleaseImage, RevisionRecord, SigningKeyRecord};
    use crate::domain::PatchState;

    conn.write_transaction(|conn| {
        // The keys logged at this start are pending: into the tree first, so they count as logged.
        super::integrate(conn)?;
        // Every later event is logged in its own transaction, so once the log holds
        // anything besides keys there is nothing left to fill in.
        if rows::holds_more_than_keys(conn)? {
            return Ok(0);
        }
        let logged: HashSet<(String, String)> = rows::subjects(conn)?.into_iter().collect();
        let mut missing: Vec<(chrono::NaiveDateTime, Event)> = Vec::new();
        let mut keep = |at: chrono::NaiveDateTime, event: Event| {
            if !logged.contains(&(event.subject().to_string(), event.kind().as_str().to_owned())) {
                missing.push((at, event));
            }
        };
        for key in SigningKeyRecord::list(conn)? {
            keep(key.created_at, records::key_introduced(&key));
            if let Some(retired) = key.retired_at {
                keep(retired, records::key_retired(&key));
            }
        }
        for advisory in AdvisoryRecord::list_all(conn)? {
            let Some(public_id) = &advisory.public_id else {
                continue;
            };
            for revision in RevisionRecord::list(conn, &advisory.id)? {
                keep(revision.published_at, records::revision(public_id, &revision));
            }
        }
        for view in PatchRecord::list(conn, None)? {
            if view.patch.state == PatchState::Draft {
                continue;
            }
            let published = view.patch.published_at.unwrap_or(view.patch.created_at);
            keep(published, records::patch_published(&view)?);
            if let Some(yanked) = view.patch.yanked_at {
                keep(yanked, records::patch_yanked(&view));
            }
        }
        for product in Product::list(conn)? {
            for image in ReleaseImage::of_product(conn, &product.id)? {
                keep(image.created_at, records::image(&product.slug, &image));
            }
        }
        // Keys before what they signed; then by time.
        missing.sort_by_key(|(at, event)| (!matches!(event, Event::KeyIntroduced(_)), *at));
        let count = missing.len();
        for (_, event) in missing {
            append(conn, &event, &Actor::Server)?;
        }
        if count > 0 {
            tracing::info!(count, "logged what was published before the transparency log");
        }
        Ok(count)
    })
}
