//! The one runner of the store conformance suites: every case on the memory
//! store, on a redis-server of its own, and all of them in turn on one
//! three-master Redis Cluster (each under its own key prefix), so that one
//! contract holds for all three. A suite lists its cases:
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
    };
}
