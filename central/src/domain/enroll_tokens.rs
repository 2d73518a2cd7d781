//! Enroll tokens: the shared `enroll.token` (which central.toml's
//! `shared_enroll_token = false` turns off) and the ones an admin creates with a
//! number of uses, an expiry and tags for the computers they enroll. [`admit`] is
//! the one check every enrollment passes.

use sitecast_common::groups::{self, Tag};
use sitecast_common::units::Duration;
use sitecast_common::wire::{CreatedEnrollToken, EnrollToken, EnrollTokenRequest};

use crate::error::CentralError;
use crate::state::Central;
use crate::store::{EnrollTokenRecord, Spent};
use crate::tokens;

/// Whether `token` may enroll a computer now; the tags that computer gets from
/// it. A limited token loses a use, durably, before this returns.
pub fn admit(c: &Central, token: &str) -> Result<Vec<Tag>, CentralError> {
    let digest = tokens::digest(token);
    if c.config.shared_enroll_token && digest == c.enroll_token {
        return Ok(Vec::new());
    }
    match c.store.use_enroll_token(digest, c.clock.now())? {
        Ok(used) => Ok(used.tags),
        Err(Spent::Unknown) => Err(CentralError::BadEnrollToken),
        Err(Spent::Expired(at)) => Err(CentralError::SpentEnrollToken(format!("expired at {at}"))),
        Err(Spent::UsedUp(used)) => Err(CentralError::SpentEnrollToken(format!(
            "is used up ({used} enrollments)"
        ))),
    }
}

/// Creates a token; its secret is in the answer and nowhere else.
pub fn create(c: &Central, req: EnrollTokenRequest) -> Result<CreatedEnrollToken, CentralError> {
    if req.uses == Some(0) {
        return Err(CentralError::invalid("bad uses: at least 1"));
    }
    let now = c.clock.now();
    let expires_at = match req.expires.as_deref() {
        None => None,
        Some(text) => {
            let span: Duration = text
                .parse()
                .map_err(|e| CentralError::invalid(format!("bad expires: {e}")))?;
            let secs = i64::try_from(span.as_secs())
                .map_err(|_| CentralError::invalid(format!("bad expires: '{text}' is too long")))?;
            if secs == 0 {
                return Err(CentralError::invalid("bad expires: at least 1s"));
            }
            Some(
                now.checked_add(jiff::SignedDuration::from_secs(secs))
                    .map_err(|_| {
                        CentralError::invalid(format!("bad expires: '{text}' is too long"))
                    })?,
            )
        }
    };
    let tags = groups::parse_tags(&req.tags).map_err(|e| CentralError::invalid(e.to_string()))?;
    let record = EnrollTokenRecord {
        id: format!("et-{}", tokens::suffix()),
        created_at: now,
        uses: req.uses,
        used: 0,
        expires_at,
        tags,
    };
    let token = tokens::generate();
    c.store.add_enroll_token(&record, tokens::digest(&token))?;
    tracing::info!(id = %record.id, uses = ?record.uses, expires_at = ?record.expires_at, "enroll token created");
    Ok(CreatedEnrollToken {
        enroll_token: shown(record),
        token,
    })
}

pub fn list(c: &Central) -> Result<Vec<EnrollToken>, CentralError> {
    Ok(c.store.enroll_tokens()?.into_iter().map(shown).collect())
}

/// Deletes a token: it enrolls nobody from now on (the computers it enrolled stay).
pub fn delete(c: &Central, id: &str) -> Result<(), CentralError> {
    if !c.store.delete_enroll_token(id)? {
        return Err(CentralError::not_found("enroll token", id));
    }
    Ok(())
}

fn shown(r: EnrollTokenRecord) -> EnrollToken {
    EnrollToken {
        id: r.id,
        created_at: r.created_at,
        uses: r.uses,
        used: r.used,
        expires_at: r.expires_at,
        tags: r.tags,
    }
}
