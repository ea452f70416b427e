//! Stations: the test fixtures on a factory's line. An admin creates one with a one-time
//! enrollment token; the fixture PC trades the token and a CSR for its mTLS certificate; an
//! admin can revoke it, and from then on it is refused.

use std::sync::Arc;

use time::Duration;
use touchmark_core::StationId;
use touchmark_core::command::NewStation;
use touchmark_core::entity::{Station, StationStatus};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::policy;
use touchmark_pki::{Certificate, parse_csr};
use touchmark_store::Rule;

use crate::catalog::id_or_random;
use crate::issuance::csr_refusal;
use crate::secrets::{random_secret, serial_number};
use crate::{Authority, AuthorityError, Result, off_runtime};

/// How long a station's mTLS certificate is valid.
const STATION_CERT_DAYS: i64 = 365;

impl Authority {
    /// Creates a pending station and its one-time enrollment token, shown once; only its hash
    /// is stored.
    ///
    /// # Errors
    /// `not_found` for an unknown factory, `conflict` if the id is taken.
    pub async fn create_station(&self, actor: Actor, req: NewStation) -> Result<(Station, String)> {
        let id = id_or_random(req.id, "st-", StationId::parse)?;
        let name = req.name.map_or_else(|| id.to_string(), Into::into);
        let now = self.clock.now();
        let token = random_secret("tme_");
        let station = Station {
            id: id.clone(),
            factory: req.factory.clone(),
            name,
            status: StationStatus::Pending,
            enrollment_expires_at: now + req.enrollment_ttl,
            cert_sha256: None,
            created_at: now,
        };
        let event = Event::new(
            now,
            EventBody::StationCreated {
                station: id,
                factory: req.factory,
                actor,
            },
        );
        self.store
            .create_station(station.clone(), Sha256Hash::of(token.as_bytes()), event)
            .await?;
        Ok((station, token))
    }

    /// Enrolls a station: checks its one-time token and signs its CSR with the station CA.
    ///
    /// # Errors
    /// `enrollment_token_invalid`, or a CSR code.
    pub async fn enroll(&self, token: &str, csr: &str) -> Result<(Station, Certificate)> {
        let now = self.clock.now();
        let token_hash = Sha256Hash::of(token.as_bytes());
        let station = self
            .store
            .station_for_enrollment(token_hash, now)
            .await?
            .ok_or(AuthorityError::EnrollmentTokenInvalid)?;
        let csr = parse_csr(csr.as_bytes()).map_err(|e| AuthorityError::Denied(csr_refusal(&e)))?;
        let (station_ca, spki_sha256) = (Arc::clone(&self.station_ca), csr.spki_sha256());
        let (id, factory) = (station.id.clone(), station.factory.clone());
        let cert = off_runtime(move || {
            touchmark_pki::issue_station_cert(
                &station_ca,
                &csr,
                id.as_str(),
                factory.as_str(),
                now - Duration::minutes(5),
                now + Duration::days(STATION_CERT_DAYS),
                serial_number(),
            )
        })
        .await?
        .map_err(AuthorityError::internal)?;
        let cert_sha256 = Sha256Hash(cert.sha256());
        let event = Event::new(
            now,
            EventBody::StationEnrolled {
                station: station.id.clone(),
                factory: station.factory.clone(),
                cert_sha256,
                pubkey_sha256: Sha256Hash(spki_sha256),
            },
        );
        self.store
            .enroll_station(&station.id, token_hash, cert_sha256, now, event)
            .await?;
        Ok((
            Station {
                status: StationStatus::Active,
                cert_sha256: Some(cert_sha256),
                ..station
            },
            cert,
        ))
    }

    /// Revokes a station: from now on it is refused, whatever certificate it presents.
    ///
    /// # Errors
    /// `not_found`, or `conflict` when it is revoked already.
    pub async fn revoke_station(&self, actor: Actor, id: &StationId) -> Result<Station> {
        let at = self.clock.now();
        let rule = Rule::new(move |station| policy::station::revoke(station, actor, at));
        Ok(self.store.update_station(id, rule).await?)
    }
}
