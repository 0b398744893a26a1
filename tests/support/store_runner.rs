//! The one runner of the store conformance suites: every case on the memory
//! store, on a redis-server of its own, and all of them in turn (each under
//! its own key prefix) on one three-master Redis Cluster, on one TLS-only
//! redis-server requiring a client certificate (`rediss://`), and on a
//! primary found through Redis Sentinel with every command followed by
//! `WAIT 1` (`redis+sentinel://`, one replica), so that one contract holds
//! for all of them. A suite lists its cases:
//!
//! ```text
//! store_conformance!(case_a, case_b);
//! store_conformance!(case_a, case_b; then |cluster| { /* after the cluster run */ });
//! ```
//!
//! Each case is an `async fn(Arc<dyn Store>)` of the suite's file.

#[allow(unused_macros)]
macro_rules! store_conformance {
    ($($case:ident),* $(,)?) => {
        store_conformance!($($case),* ; then |_cluster: &crate::support::redis::RedisCluster| {});
    };
    ($($case:ident),* $(,)? ; then $after:expr) => {
        mod memory_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store = fsgate::store::memory::MemoryStore::new();
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }

        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let server = crate::support::redis::RedisServer::start();
                    let store = fsgate::store::open(&server.url()).await.expect("open redis");
                    super::$case(store).await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn redis_cluster_conformance() {
            let cluster = crate::support::redis::RedisCluster::start();
            $(
                let store = fsgate::store::redis::RedisStore::connect_with_prefix(
                    &cluster.url(),
                    concat!("t-", stringify!($case)),
                )
                .await
                .expect("open cluster");
                $case(std::sync::Arc::new(store)).await;
            )*
            let after: fn(&crate::support::redis::RedisCluster) = $after;
            after(&cluster);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn rediss_conformance() {
            let server = crate::support::redis_tls::RedisTlsServer::start();
            $(
                let store = fsgate::store::redis::RedisStore::connect_with_prefix(
                    server.options(),
                    concat!("t-", stringify!($case)),
                )
                .await
                .expect("open rediss");
                $case(std::sync::Arc::new(store)).await;
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn sentinel_conformance() {
            let set = crate::support::sentinel::SentinelSet::start(1, 1, 1);
            let mut options = fsgate::store::StoreOptions::from(set.url());
            options.replica_acks = 1;
            $(
                let store = fsgate::store::redis::RedisStore::connect_with_prefix(
                    &options,
                    concat!("t-", stringify!($case)),
                )
                .await
                .expect("open sentinel");
                $case(std::sync::Arc::new(store)).await;
            )*
            // Every command went with a WAIT, and the replica has every write.
            let stat = |name: &str| {
                crate::support::sentinel::info_field(set.primary.port(), "commandstats", name)
                    .and_then(|v| v.split(['=', ',']).nth(1).and_then(|n| n.parse::<u64>().ok()))
                    .unwrap_or(0)
            };
            let (waits, scripts) = (stat("cmdstat_wait"), stat("cmdstat_evalsha"));
            assert!(waits >= scripts && scripts > 0, "{waits} WAITs for {scripts} EVALSHAs");
            let offset = |port: u16, field: &str| {
                crate::support::sentinel::info_field(port, "replication", field)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let written = offset(set.primary.port(), "master_repl_offset");
            crate::support::sentinel::wait_until(
                "the replica has every write",
                std::time::Duration::from_secs(5),
                || offset(set.replicas[0].port(), "slave_repl_offset") >= written,
            );
        }
    };
}
