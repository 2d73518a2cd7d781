//! The replicator driven through a fake link on a paused tokio clock: connect,
//! a partial fetch, a disconnection, a reconnection. Nothing is fetched twice,
//! nothing before the connection's activated set is known, and the disk quota
//! evicts nothing while that set is unknown.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures_util::future::BoxFuture;
use sitecast_common::ids::PackageId;
use sitecast_common::info::{ActionDoc, Info, InfoDoc};
use sitecast_common::protocol::{Request, Response};
use sitecast_common::replication::Wanted;
use sitecast_common::units::Size;
use sitecast_common::{fragment, signing};
use sitecast_relay::cache::Cache;
use sitecast_relay::clock::SystemClock;
use sitecast_relay::error::LinkError;
use sitecast_relay::replicator::{Replicator, Setup};
use sitecast_relay::snapshot::Snapshot;
use sitecast_relay::upstream::{Answer, Body, LinkEvent, Upstream};
use sitecast_relay::RelayConfig;
use tokio::sync::watch;

const FRAGMENT: u64 = 100;

/// A signed package of `count` fragments; its envelope and its fragments.
fn package(
    key: &SigningKey,
    id: &str,
    count: u64,
    supersedes: Option<&str>,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data: Vec<u8> = (0..count * FRAGMENT)
        .map(|i| (i * 7 + count) as u8)
        .collect();
    let plan = fragment::plan_reader(&data[..], FRAGMENT).unwrap();
    let doc = InfoDoc {
        schema: 1,
        id: id.into(),
        name: "app".into(),
        version: id.into(),
        os: "any".into(),
        priority: 5,
        action: ActionDoc::Store {
            path: "/opt/app".into(),
        },
        archive: "none".into(),
        size: plan.size(),
        sha256: hex::encode(plan.sha256()),
        fragment_size: FRAGMENT,
        fragments: plan.fragments().iter().map(hex::encode).collect(),
        success_exit_codes: vec![0],
        command_timeout_s: 60,
        notify: None,
        done_action_text: None,
        supersedes: supersedes.map(Into::into),
        uninstall: None,
        issued_at: "2026-01-01T00:00:00Z".into(),
        restart: false,
    };
    let info = Info::try_from(doc).unwrap();
    let fragments = data.chunks(FRAGMENT as usize).map(<[u8]>::to_vec).collect();
    (signing::sign_info(key, &info), fragments)
}

/// What the fake central serves.
struct Central {
    infos: BTreeMap<PackageId, Vec<u8>>,
    fragments: BTreeMap<(PackageId, u32), Vec<u8>>,
}

/// One connection to the fake central.
struct FakeLink {
    central: Arc<Central>,
    /// Fragments this connection starts but never finishes (it is about to drop).
    stalls: BTreeSet<u32>,
    /// Fragments whose stream breaks halfway.
    breaks: BTreeSet<u32>,
    /// Fragments sent with a flipped byte, once.
    corrupts: Mutex<BTreeSet<u32>>,
    requests: Mutex<Vec<Request>>,
    closed: AtomicBool,
}

impl FakeLink {
    fn new(central: &Arc<Central>, stalls: impl IntoIterator<Item = u32>) -> Arc<Self> {
        Arc::new(Self {
            central: Arc::clone(central),
            stalls: stalls.into_iter().collect(),
            breaks: BTreeSet::new(),
            corrupts: Mutex::new(BTreeSet::new()),
            requests: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    fn faulty(central: &Arc<Central>, corrupts: [u32; 1], breaks: [u32; 1]) -> Arc<Self> {
        Arc::new(Self {
            central: Arc::clone(central),
            stalls: BTreeSet::new(),
            breaks: breaks.into_iter().collect(),
            corrupts: Mutex::new(corrupts.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn fragments_asked(&self) -> Vec<u32> {
        let mut asked: Vec<u32> = self
            .requests()
            .iter()
            .filter_map(|r| match r {
                Request::Fragment { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        asked.sort();
        asked
    }
}

/// The data of a response, whole or never.
enum FakeBody {
    Data(Option<Bytes>),
    Stalled,
    /// Half the data, then the stream breaks.
    Broken(Option<Bytes>),
}

impl Body for FakeBody {
    fn chunk(&mut self, max: usize) -> BoxFuture<'_, Result<Option<Bytes>, LinkError>> {
        Box::pin(async move {
            match self {
                FakeBody::Data(rest) => {
                    let Some(mut bytes) = rest.take() else {
                        return Ok(None);
                    };
                    let chunk = bytes.split_to(max.min(bytes.len()));
                    if !bytes.is_empty() {
                        *rest = Some(bytes);
                    }
                    Ok(Some(chunk))
                }
                FakeBody::Stalled => std::future::pending().await,
                FakeBody::Broken(half) => half.take().map(Some).ok_or(LinkError::Down),
            }
        })
    }
}

impl Upstream for FakeLink {
    fn request(&self, request: Request) -> BoxFuture<'static, Result<Answer, LinkError>> {
        self.requests.lock().unwrap().push(request.clone());
        let data = |bytes: &Vec<u8>| {
            let len = bytes.len() as u64;
            let body: Box<dyn Body> = Box::new(FakeBody::Data(Some(Bytes::from(bytes.clone()))));
            Ok((Response::Data { len }, body))
        };
        let none = || {
            let body: Box<dyn Body> = Box::new(FakeBody::Data(None));
            Ok((
                Response::NotFound {
                    reason: "not here".into(),
                },
                body,
            ))
        };
        let answer = match &request {
            Request::Info { package_id } => {
                self.central.infos.get(package_id).map_or_else(none, data)
            }
            Request::Fragment { package_id, index } if self.stalls.contains(index) => {
                let len = self.central.fragments[&(package_id.clone(), *index)].len() as u64;
                let body: Box<dyn Body> = Box::new(FakeBody::Stalled);
                Ok((Response::Data { len }, body))
            }
            Request::Fragment { package_id, index } if self.breaks.contains(index) => {
                let bytes = &self.central.fragments[&(package_id.clone(), *index)];
                let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
                let body: Box<dyn Body> = Box::new(FakeBody::Broken(Some(half)));
                Ok((
                    Response::Data {
                        len: bytes.len() as u64,
                    },
                    body,
                ))
            }
            Request::Fragment { package_id, index }
                if self.corrupts.lock().unwrap().remove(index) =>
            {
                let mut bytes = self.central.fragments[&(package_id.clone(), *index)].clone();
                bytes[7] ^= 0x01;
                data(&bytes)
            }
            Request::Fragment { package_id, index } => self
                .central
                .fragments
                .get(&(package_id.clone(), *index))
                .map_or_else(none, data),
            Request::Delta { .. } => none(),
        };
        Box::pin(async move { answer })
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

fn config(max_disk: Option<u64>) -> RelayConfig {
    RelayConfig {
        central: "127.0.0.1:1".into(),
        id: "relay-1".parse().unwrap(),
        token: "token".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        schedule: None,
        max_rate: None,
        max_disk: max_disk.map(Size::from_bytes),
        scrub_interval: Some("0s".parse().unwrap()),
        wol_port: None,
        http_header_timeout: None,
        http_idle_timeout: None,
        http_max_connections: None,
    }
}

/// Waits (in virtual time) until the snapshot satisfies `ok`.
async fn until(
    snapshot: &mut watch::Receiver<Snapshot>,
    ok: impl FnMut(&Snapshot) -> bool,
) -> Snapshot {
    tokio::time::timeout(Duration::from_secs(3600), snapshot.wait_for(ok))
        .await
        .expect("the replicator did not get there")
        .unwrap()
        .clone()
}

fn held(s: &Snapshot, id: &PackageId) -> Option<u32> {
    s.holdings.get(id).map(|h| h.fragments)
}

fn on_disk(dir: &Path, id: &PackageId) -> bool {
    dir.join("cache").join(id.as_str()).exists()
}

#[tokio::test(start_paused = true)]
async fn a_lost_link_resumes_where_it_was_and_nothing_is_evicted_on_a_stale_view() {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let (old_info, old_fragments) = package(&key, "app-1", 1, None);
    let (new_info, new_fragments) = package(&key, "app-2", 3, Some("app-1"));
    let (old, new): (PackageId, PackageId) = ("app-1".parse().unwrap(), "app-2".parse().unwrap());
    let central = Arc::new(Central {
        infos: BTreeMap::from([
            (old.clone(), old_info.clone()),
            (new.clone(), new_info.clone()),
        ]),
        fragments: new_fragments
            .iter()
            .enumerate()
            .map(|(i, f)| ((new.clone(), i as u32 + 1), f.clone()))
            .collect(),
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(&dir.path().join("cache")).unwrap());
    // The old version is held whole, from an earlier life.
    cache.store_info(&old, &old_info).unwrap();
    cache.store_fragment(&old, 1, &old_fragments[0]).unwrap();

    // A quota nothing fits in, from the start.
    let (replicator, inbox, handles) = Replicator::new(Setup {
        dir: dir.path().to_owned(),
        cache: Arc::clone(&cache),
        config: config(Some(1)),
        clock: Arc::new(SystemClock::default()),
    })
    .unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(replicator.run(inbox, stopped));
    let mut snapshot = handles.snapshot.clone();
    let link = |event| handles.link.send(event).unwrap();
    let wanted = vec![Wanted {
        id: new.clone(),
        priority: 5,
        info_sha256: fragment::sha256_hex(&new_info),
        supersedes: Some(old.clone()),
    }];

    // No link: the activated set is unknown, so nothing is evicted.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = snapshot.borrow().clone();
    assert_eq!((held(&s, &old), s.health.evicted), (Some(1), 0), "{s:?}");

    // Connected, not told the set yet: nothing fetched, nothing evicted.
    let first = FakeLink::new(&central, [2, 3]);
    link(LinkEvent::Connected {
        upstream: first.clone(),
        keys: vec![key.verifying_key()],
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(first.requests(), vec![]);
    assert!(on_disk(dir.path(), &old));
    assert_eq!(snapshot.borrow().health.evicted, 0);

    // Told it, without a quota: the new version's info, a declined delta
    // against the old one, then fragments; only the first one arrives.
    handles.config.send_replace(config(None));
    tokio::time::sleep(Duration::from_secs(2)).await;
    link(LinkEvent::Activated(wanted.clone()));
    let s = until(&mut snapshot, |s| {
        held(s, &new) == Some(1) && !s.health.kept.is_empty()
    })
    .await;
    assert_eq!(s.health.kept, vec![old.clone()]);
    assert_eq!(first.fragments_asked(), vec![1, 2, 3]);

    // The link drops; the quota comes back. No activated set: nothing goes.
    link(LinkEvent::Disconnected);
    handles.config.send_replace(config(Some(1)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let s = snapshot.borrow().clone();
    assert_eq!((held(&s, &old), s.health.evicted), (Some(1), 0), "{s:?}");
    assert!(s.health.kept.is_empty(), "{s:?}");
    assert!(on_disk(dir.path(), &old));

    // A new link, not told the set yet: still nothing fetched or evicted.
    let second = FakeLink::new(&central, []);
    link(LinkEvent::Connected {
        upstream: second.clone(),
        keys: vec![key.verifying_key()],
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(second.requests(), vec![]);
    assert!(on_disk(dir.path(), &old));
    assert_eq!(snapshot.borrow().health.evicted, 0);

    // Told it: only the two fragments that never arrived are asked for, and
    // the old version, a kept base over the quota, is evicted.
    link(LinkEvent::Activated(wanted));
    let s = until(&mut snapshot, |s| {
        held(s, &new) == Some(3) && held(s, &old).is_none() && s.health.evicted == 1
    })
    .await;
    assert_eq!(second.fragments_asked(), vec![2, 3]);
    assert_eq!(second.requests().len(), 2, "{:?}", second.requests());
    assert!(!on_disk(dir.path(), &old));
    assert_eq!(
        cache.fragments_held(&new).unwrap(),
        BTreeSet::from([1, 2, 3])
    );
    assert_eq!(s.bytes_from_central, new_info.len() as u64 + 3 * FRAGMENT);
    // The first link asked for each thing once.
    let infos = first
        .requests()
        .iter()
        .filter(|r| matches!(r, Request::Info { .. }))
        .count();
    assert_eq!(
        (infos, first.requests().len()),
        (1, 5),
        "{:?}",
        first.requests()
    );

    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_bad_fragment_is_fetched_again_and_a_broken_stream_closes_the_link() {
    let key = SigningKey::from_bytes(&[8u8; 32]);
    let (info, fragments) = package(&key, "app-3", 3, None);
    let id: PackageId = "app-3".parse().unwrap();
    let central = Arc::new(Central {
        infos: BTreeMap::from([(id.clone(), info.clone())]),
        fragments: fragments
            .iter()
            .enumerate()
            .map(|(i, f)| ((id.clone(), i as u32 + 1), f.clone()))
            .collect(),
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(&dir.path().join("cache")).unwrap());
    let (replicator, inbox, handles) = Replicator::new(Setup {
        dir: dir.path().to_owned(),
        cache: Arc::clone(&cache),
        config: config(None),
        clock: Arc::new(SystemClock::default()),
    })
    .unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(replicator.run(inbox, stopped));
    let mut snapshot = handles.snapshot.clone();
    let link = |event| handles.link.send(event).unwrap();
    let wanted = vec![Wanted {
        id: id.clone(),
        priority: 5,
        info_sha256: fragment::sha256_hex(&info),
        supersedes: None,
    }];

    // Fragment 2 comes corrupted once, fragment 3's stream breaks.
    let first = FakeLink::faulty(&central, [2], [3]);
    link(LinkEvent::Connected {
        upstream: first.clone(),
        keys: vec![key.verifying_key()],
    });
    link(LinkEvent::Activated(wanted.clone()));
    until(&mut snapshot, |s| held(s, &id) == Some(2)).await;
    // The corrupted one was discarded and asked again on the same link; the
    // broken stream made the replicator close the link.
    assert_eq!(first.fragments_asked(), vec![1, 2, 2, 3]);
    assert!(first.closed.load(Ordering::Relaxed));
    assert_eq!(cache.fragments_held(&id).unwrap(), BTreeSet::from([1, 2]));

    link(LinkEvent::Disconnected);
    let second = FakeLink::new(&central, []);
    link(LinkEvent::Connected {
        upstream: second.clone(),
        keys: vec![key.verifying_key()],
    });
    link(LinkEvent::Activated(wanted));
    until(&mut snapshot, |s| held(s, &id) == Some(3)).await;
    assert_eq!(second.requests().len(), 1, "{:?}", second.requests());
    assert_eq!(second.fragments_asked(), vec![3]);
    assert!(!second.closed.load(Ordering::Relaxed));

    stop.send(true).unwrap();
    task.await.unwrap();
}
