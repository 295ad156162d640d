//! The `kartotek` binary. Everything lives in the library; see `kartotek --help`.

/// jemalloc instead of glibc's malloc: the bench's profile of a leader under load put 12–16 %
/// of its CPU in glibc's malloc/free (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`),
/// and jemalloc's per-thread caches also keep a long-running node's heap from fragmenting
/// (the choice TiKV made for the same RocksDB + gRPC shape).
///
/// Without the `jemalloc` feature (default on) the node uses the system allocator: only for
/// the Jepsen clock nemesis, whose libfaketime cannot start under jemalloc.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    kartotek_node::cli::run()
}
