//! Claiming runs with a lease: one owner at a time, a dead or stale owner is taken over, and
//! two stores on one file (two processes) racing for the same spec get one run between them.

use std::time::Duration;

use domain::RunStatus;
use store::{Claim, LeaseOwner, Liveness, NewRun, Store};

use crate::{db_path, fresh};

const NEW: NewRun<'static> = NewRun {
    experiment: "exp",
    spec_hash: "hash",
    dataset_fingerprint: "fp",
    spec_json: "{}",
};

fn owner(pid: u32) -> LeaseOwner {
    LeaseOwner {
        pid,
        host: "host-a".into(),
        token: format!("token-{pid}"),
    }
}

fn alive() -> Liveness<'static> {
    Liveness {
        stale_after: Duration::from_secs(3600),
        is_dead: &|_| false,
        takeover: false,
    }
}

#[tokio::test]
async fn a_live_owner_keeps_its_run_and_a_dead_one_is_taken_over() {
    let (_dir, store) = fresh().await;
    let (a, b) = (owner(10), owner(20));
    assert_eq!(
        store.claim_run(&NEW, &a, true, &alive()).await.unwrap(),
        Claim::Created(1)
    );
    // The owner itself may claim again (a resume within one process).
    assert_eq!(
        store.claim_run(&NEW, &a, true, &alive()).await.unwrap(),
        Claim::Resumed(1)
    );

    let Claim::Busy(holder) = store.claim_run(&NEW, &b, true, &alive()).await.unwrap() else {
        panic!("b claimed a run a holds")
    };
    assert_eq!(
        (holder.run, holder.pid, holder.host.as_str()),
        (1, 10, "host-a")
    );
    // `--new` is another run, not a fight over this one.
    assert_eq!(
        store.claim_run(&NEW, &b, false, &alive()).await.unwrap(),
        Claim::Created(2)
    );
    store.release_lease(2, &b).await.unwrap();
    store.set_run_status(2, RunStatus::Completed).await.unwrap();

    let dead = Liveness {
        is_dead: &|h| h.pid == 10,
        ..alive()
    };
    assert_eq!(
        store.claim_run(&NEW, &b, true, &dead).await.unwrap(),
        Claim::Resumed(1)
    );
    assert!(!store.heartbeat(1, &a).await.unwrap(), "a lost its lease");
    assert!(store.heartbeat(1, &b).await.unwrap());
    assert_eq!(store.lease_holder(1).await.unwrap().unwrap().pid, 20);

    let stale = Liveness {
        stale_after: Duration::ZERO,
        ..alive()
    };
    assert_eq!(
        store.claim_run(&NEW, &a, true, &stale).await.unwrap(),
        Claim::Resumed(1)
    );
    let takeover = Liveness {
        takeover: true,
        ..alive()
    };
    assert_eq!(
        store.claim_run(&NEW, &b, true, &takeover).await.unwrap(),
        Claim::Resumed(1)
    );

    store.release_lease(1, &a).await.unwrap();
    assert_eq!(
        store.lease_holder(1).await.unwrap().unwrap().pid,
        20,
        "not a's to release"
    );
    store.release_lease(1, &b).await.unwrap();
    assert_eq!(store.lease_holder(1).await.unwrap(), None);
    assert_eq!(
        store.claim_run(&NEW, &a, true, &alive()).await.unwrap(),
        Claim::Resumed(1)
    );
}

/// Two stores on one database file, as two processes would open it, claim the same spec at
/// once, many times over: every time one creates or resumes the run and the other is told it
/// is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_for_one_spec_get_one_run() {
    let (dir, first) = fresh().await;
    let second = Store::open(&db_path(&dir)).await.unwrap();
    for round in 0..20 {
        let (a, b) = (owner(100 + round), owner(200 + round));
        let live = alive();
        let (x, y) = tokio::join!(
            first.claim_run(&NEW, &a, true, &live),
            second.claim_run(&NEW, &b, true, &live),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        let (won, lost) = match (&x, &y) {
            (Claim::Busy(_), other) => (other.clone(), x.clone()),
            (other, _) => (other.clone(), y.clone()),
        };
        assert!(
            matches!(lost, Claim::Busy(_)),
            "round {round}: {x:?} and {y:?}"
        );
        assert!(
            matches!(won, Claim::Created(1) | Claim::Resumed(1)),
            "round {round}: {x:?} and {y:?}"
        );
        for o in [&a, &b] {
            first.release_lease(1, o).await.unwrap();
        }
    }
    assert_eq!(first.list_runs().await.unwrap().len(), 1);
}
