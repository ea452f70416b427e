//! Vulnerability reports (issue 18): a report stored with its `vuln.received` event and read
//! back as stored; a report naming no such product, or a taken id, writes nothing; a report
//! moves by the rules of `policy::vuln` under the store's lock, and a refused move writes
//! nothing; links are checked against the report, the product and its releases; and each
//! deadline's alert is marked once, whoever races to mark it.

use std::sync::Arc;

use time::OffsetDateTime;
use touchmark_core::ErrorCode;
use touchmark_core::csaf::Advisory;
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::firmware::{NewRelease, Release, ReleaseKey, ReleaseKeyAlgorithm};
use touchmark_core::policy::vuln::{classify, transition};
use touchmark_core::vuln::{
    CraClass, CvssVector, Deadline, Justification, Link, LinkStatus, PackageUrl, PerDeadline,
    Report, ReportContent, ReportState, VersionRange,
};

use crate::{RecordKind, Rule, Store, StoreError};

use super::kit::{at, check_log, log_size, product, product_created, product_id};

fn report(id: &str, product: Option<&str>, secs: i64) -> (Report, Event) {
    let content = ReportContent {
        product: product.map(product_id),
        version: Some("1.2.0".into()),
        description: Some("<script>alert(1)</script>\nline two".into()),
        encrypted: None,
        cvss: Some(
            CvssVector::parse("cvss", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap(),
        ),
        contact: Some("mailto:researcher@example.com".into()),
    };
    let content_sha256 = Sha256Hash::of(&content.canonical_bytes().unwrap());
    let report = Report {
        id: id.into(),
        secret_sha256: Sha256Hash::of(id.as_bytes()),
        state: ReportState::Received,
        content,
        content_sha256,
        class: None,
        aware_at: None,
        corrective_at: None,
        submitted: PerDeadline::default(),
        alerted: PerDeadline::default(),
        received_at: at(secs),
        updated_at: at(secs),
    };
    let event = Event::new(
        report.received_at,
        EventBody::VulnReceived {
            report: report.id.clone(),
            content_sha256,
        },
    );
    (report, event)
}

fn moved(
    to: ReportState,
    when: OffsetDateTime,
) -> Rule<Report, touchmark_core::policy::vuln::ReportChange> {
    Rule::new(move |r: &Report| transition(r, to, None, Actor::System, when))
}

/// A report round-trips; one naming an unknown product, or a taken id, writes nothing; it moves
/// by rule, and a move its state refuses writes nothing; reports list newest first.
pub async fn reports_round_trip_and_move_by_rule(store: Arc<dyn Store>) {
    let p = product("sensor");
    store
        .create_product(p.clone(), product_created(&p))
        .await
        .unwrap();
    let (first, e) = report("vr-0000000000000001", Some("sensor"), 10);
    store.create_report(first.clone(), e).await.unwrap();
    let (anonymous, e) = report("vr-0000000000000002", None, 20);
    store.create_report(anonymous.clone(), e).await.unwrap();
    assert_eq!(
        store.report(&first.id).await.unwrap().as_ref(),
        Some(&first)
    );
    assert_eq!(store.report("vr-ffffffffffffffff").await.unwrap(), None);
    let size = log_size(&store).await;

    let (unknown, e) = report("vr-0000000000000003", Some("nope"), 30);
    assert!(matches!(
        store.create_report(unknown, e).await,
        Err(StoreError::NotFound(r)) if r.kind == RecordKind::Product
    ));
    let (taken, e) = report(&first.id, None, 40);
    assert!(matches!(
        store.create_report(taken, e).await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(
        log_size(&store).await,
        size,
        "a refused report logs nothing"
    );
    let listed: Vec<String> = store
        .reports()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [anonymous.id.clone(), first.id.clone()]);

    let triaged = store
        .update_report(&first.id, moved(ReportState::Triaged, at(50)))
        .await
        .unwrap();
    assert_eq!(triaged.state, ReportState::Triaged);
    let refused = store
        .update_report(&first.id, moved(ReportState::Fixed, at(60)))
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::Refused(r)) if r.code == ErrorCode::ReportTransitionInvalid
    ));
    let classified = store
        .update_report(
            &first.id,
            Rule::new(|r: &Report| {
                classify(
                    r,
                    CraClass::ExploitedVulnerability,
                    Some(at(55)),
                    Actor::System,
                    at(70),
                )
            }),
        )
        .await
        .unwrap();
    let read = store.report(&first.id).await.unwrap().unwrap();
    assert_eq!(read, classified);
    assert_eq!(
        (read.state, read.class, read.aware_at, read.updated_at),
        (
            ReportState::Triaged,
            Some(CraClass::ExploitedVulnerability),
            Some(at(55)),
            at(70)
        )
    );
    assert!(matches!(
        store
            .update_report("vr-ffffffffffffffff", moved(ReportState::Triaged, at(80)))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let kinds: Vec<&str> = check_log(&store)
        .await
        .iter()
        .map(|e| e.body.kind())
        .filter(|k| k.starts_with("vuln."))
        .collect();
    assert_eq!(
        kinds,
        [
            "vuln.received",
            "vuln.received",
            "vuln.state_changed",
            "vuln.classified"
        ]
    );
}

async fn release(store: &Arc<dyn Store>, id: &str, product: &str, version: &str) {
    let key = ReleaseKey {
        id: format!("rk-{id}"),
        product: product_id(product),
        algorithm: ReleaseKeyAlgorithm::X25519,
        public_key_pem: "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n".into(),
        public_key_sha256: Sha256Hash::of(id.as_bytes()),
        created_at: at(1),
    };
    let event = Event::new(
        at(1),
        EventBody::ReleaseKeyCreated {
            product: key.product.clone(),
            release_key: key.id.clone(),
            algorithm: "x25519".into(),
            store: "memory".into(),
            public_key_sha256: key.public_key_sha256,
            actor: Actor::System,
        },
    );
    store.create_release_key(key.clone(), event).await.unwrap();
    let release = Release {
        id: id.into(),
        product: product_id(product),
        version: version.into(),
        image_sha256: Sha256Hash::of(b"image"),
        image_size: 5,
        signing_key: Sha256Hash([3; 32]),
        release_key: key.id.clone(),
        plaintext_hash: "00".into(),
        sbom_sha256: None,
        created_at: at(2),
        withdrawn_at: None,
    };
    let event = Event::new(
        at(2),
        EventBody::ReleaseCreated {
            product: release.product.clone(),
            release: release.id.clone(),
            version: release.version.clone(),
            image_sha256: release.image_sha256,
            size: 5,
            signing_key: release.signing_key,
            release_key: key.id,
            sbom_sha256: None,
            actor: Actor::System,
        },
    );
    store
        .create_release(
            NewRelease {
                release,
                image: b"image".to_vec(),
                sbom: None,
                components: Vec::new(),
            },
            event,
        )
        .await
        .unwrap();
}

fn link(
    report: &str,
    product: &str,
    release: Option<(&str, &str)>,
    purl: Option<(&str, &str)>,
    secs: i64,
) -> (Link, Event) {
    let link = Link {
        report: report.into(),
        product: product_id(product),
        release: release.map(|(id, _)| id.to_owned()),
        version: release.map(|(_, v)| v.to_owned()),
        purl: purl.map(|(p, _)| PackageUrl::parse("purl", p).unwrap()),
        range: purl.map(|(_, r)| VersionRange::parse("range", r).unwrap()),
        status: LinkStatus::Affected,
        justification: None,
        linked_at: at(secs),
    };
    let event = Event::new(
        link.linked_at,
        EventBody::VulnLinked {
            report: link.report.clone(),
            product: link.product.clone(),
            release: link.release.clone(),
            version: link.version.clone(),
            purl: link.purl.as_ref().map(|p| p.as_str().to_owned()),
            range: link.range.as_ref().map(|r| r.as_str().to_owned()),
            status: Some(link.status.as_str().to_owned()),
            justification: link.justification.map(|j| j.as_str().to_owned()),
            actor: Actor::System,
        },
    );
    (link, event)
}

/// A link stating `status` (and `justification`) of a release, with its event.
fn stating(
    report: &str,
    product: &str,
    release: (&str, &str),
    status: LinkStatus,
    justification: Option<Justification>,
    secs: i64,
) -> (Link, Event) {
    let (mut l, mut event) = link(report, product, Some(release), None, secs);
    l.status = status;
    l.justification = justification;
    if let EventBody::VulnLinked {
        status: s,
        justification: j,
        ..
    } = &mut event.body
    {
        *s = Some(status.as_str().to_owned());
        *j = justification.map(|j| j.as_str().to_owned());
    }
    (l, event)
}

/// Links to a product, a release of it, and an SBOM component, and one stating a release not
/// affected with its justification, read back oldest first; a link to an unknown report,
/// product or release, a release of another product, or the same link twice writes nothing.
pub async fn links_are_checked_and_kept(store: Arc<dyn Store>) {
    for id in ["sensor", "other"] {
        let p = product(id);
        store
            .create_product(p.clone(), product_created(&p))
            .await
            .unwrap();
    }
    release(&store, "rel-1", "sensor", "1.2.0+0").await;
    release(&store, "rel-2", "other", "1.0.0+0").await;
    let (r, e) = report("vr-00000000000000aa", Some("sensor"), 10);
    store.create_report(r.clone(), e).await.unwrap();

    let component = Some(("pkg:cargo/rustls@0.23.5", "vers:cargo/>=0.23.0|<0.23.6"));
    let kept = [
        link(&r.id, "sensor", None, None, 20),
        link(&r.id, "sensor", Some(("rel-1", "1.2.0+0")), None, 21),
        link(&r.id, "sensor", Some(("rel-1", "1.2.0+0")), component, 22),
        stating(
            &r.id,
            "other",
            ("rel-2", "1.0.0+0"),
            LinkStatus::NotAffected,
            Some(Justification::VulnerableCodeNotInExecutePath),
            23,
        ),
    ];
    for (l, e) in &kept {
        store.add_link(l.clone(), e.clone()).await.unwrap();
    }
    let size = log_size(&store).await;
    let refused = [
        (
            link("vr-00000000000000bb", "sensor", None, None, 30),
            RecordKind::VulnReport,
        ),
        (link(&r.id, "nope", None, None, 31), RecordKind::Product),
        (
            link(&r.id, "sensor", Some(("rel-9", "9.9.9+0")), None, 32),
            RecordKind::Release,
        ),
        (
            link(&r.id, "sensor", Some(("rel-2", "1.0.0+0")), None, 33),
            RecordKind::Release,
        ),
    ];
    for ((l, e), kind) in refused {
        let result = store.add_link(l.clone(), e).await;
        assert!(
            matches!(&result, Err(StoreError::NotFound(found)) if found.kind == kind),
            "{l:?}: {result:?}"
        );
    }
    for (l, e) in &kept {
        let twice = store.add_link(l.clone(), e.clone()).await;
        assert!(matches!(twice, Err(StoreError::Exists(_))), "{twice:?}");
    }
    assert_eq!(log_size(&store).await, size, "a refused link logs nothing");
    let read = store.links(&r.id).await.unwrap();
    let expected: Vec<Link> = kept.into_iter().map(|(l, _)| l).collect();
    assert_eq!(read, expected);
    assert!(store.links("vr-00000000000000bb").await.unwrap().is_empty());
}

/// A deadline's alert is marked once: of two concurrent marks, one wins, and the report shows
/// its time; another deadline is marked apart; an unknown report marks nothing.
pub async fn deadline_alerts_are_marked_once(store: Arc<dyn Store>) {
    let (r, e) = report("vr-00000000000000cc", None, 10);
    store.create_report(r.clone(), e).await.unwrap();
    let size = log_size(&store).await;
    let marks = (0..2).map(|i| {
        let store = Arc::clone(&store);
        let id = r.id.clone();
        tokio::spawn(async move {
            store
                .mark_alerted(&id, Deadline::EarlyWarning, at(20 + i))
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for mark in marks {
        won += usize::from(mark.await.unwrap());
    }
    assert_eq!(won, 1, "one mark of two wins");
    assert!(
        store
            .mark_alerted(&r.id, Deadline::Notification, at(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_alerted("vr-ffffffffffffffff", Deadline::Notification, at(30))
            .await
            .unwrap()
    );
    let read = store.report(&r.id).await.unwrap().unwrap();
    assert!(
        read.alerted
            .early_warning
            .is_some_and(|t| t == at(20) || t == at(21))
    );
    assert_eq!(read.alerted.notification, Some(at(30)));
    assert_eq!(read.alerted.final_report, None);
    assert_eq!(log_size(&store).await, size, "a mark is not an event");
}

fn advisory(report: &str, tracking_id: &str, version: u32, secs: i64) -> (Advisory, Event) {
    let document =
        format!("{{\"tracking\":\"{tracking_id}\",\"version\":{version}}}\n").into_bytes();
    let advisory = Advisory {
        report: report.into(),
        tracking_id: tracking_id.into(),
        version,
        vex: tracking_id.ends_with("-vex"),
        summary: format!("revision {version}"),
        initial_at: at(10),
        published_at: at(secs),
        sha256: Sha256Hash::of(&document),
        document,
    };
    let event = Event::new(
        at(secs),
        EventBody::VulnAdvisoryPublished {
            report: report.into(),
            tracking_id: tracking_id.into(),
            version: u64::from(version),
            sha256: advisory.sha256,
            actor: Actor::System,
        },
    );
    (advisory, event)
}

/// Advisories are stored revision by revision with their event: each version one more than
/// the last of its tracking id (a version again or skipped is `Exists`, and of two replicas
/// publishing the same one, one wins), for a report that exists; read back byte for byte, and
/// the latest of each tracking id is what the directory serves.
pub async fn advisories_are_versioned(store: Arc<dyn Store>) {
    let (r, e) = report("vr-00000000000000dd", None, 10);
    store.create_report(r.clone(), e).await.unwrap();
    let size = log_size(&store).await;
    let (first, event) = advisory(&r.id, &r.id, 1, 20);
    store.publish_advisory(first.clone(), event).await.unwrap();
    for (version, why) in [(1, "again"), (3, "skipped")] {
        let (a, event) = advisory(&r.id, &r.id, version, 21);
        let result = store.publish_advisory(a, event).await;
        assert!(
            matches!(&result, Err(StoreError::Exists(found)) if found.kind == RecordKind::Advisory),
            "{why}: {result:?}"
        );
    }
    let (unknown, event) = advisory("vr-ffffffffffffffee", "vr-ffffffffffffffee", 1, 21);
    let result = store.publish_advisory(unknown, event).await;
    assert!(
        matches!(&result, Err(StoreError::NotFound(found)) if found.kind == RecordKind::VulnReport),
        "{result:?}"
    );
    assert_eq!(
        log_size(&store).await,
        size + 1,
        "a refused revision logs nothing"
    );

    let races = (0..2).map(|i| {
        let store = Arc::clone(&store);
        let (a, event) = advisory(&r.id, &r.id, 2, 30 + i);
        tokio::spawn(async move { store.publish_advisory(a, event).await.is_ok() })
    });
    let mut won = 0;
    for race in races {
        won += usize::from(race.await.unwrap());
    }
    assert_eq!(won, 1, "one of two revisions 2 is stored");
    let vex_id = format!("{}-vex", r.id);
    let (vex, event) = advisory(&r.id, &vex_id, 1, 40);
    store.publish_advisory(vex.clone(), event).await.unwrap();
    assert_eq!(log_size(&store).await, size + 3);

    let all = store.advisories(&r.id).await.unwrap();
    let versions: Vec<(&str, u32)> = all
        .iter()
        .map(|a| (a.tracking_id.as_str(), a.version))
        .collect();
    assert_eq!(
        versions,
        [(r.id.as_str(), 1), (r.id.as_str(), 2), (vex_id.as_str(), 1)]
    );
    assert_eq!(all[0], first, "read back as stored, byte for byte");
    assert_eq!(all[2], vex);
    let latest = store.latest_advisories().await.unwrap();
    let latest: Vec<(&str, u32)> = latest
        .iter()
        .filter(|a| a.report == r.id)
        .map(|a| (a.tracking_id.as_str(), a.version))
        .collect();
    assert_eq!(latest, [(r.id.as_str(), 2), (vex_id.as_str(), 1)]);
    assert!(
        store
            .advisories("vr-ffffffffffffffee")
            .await
            .unwrap()
            .is_empty()
    );
}
