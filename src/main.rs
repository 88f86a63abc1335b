/// jemalloc rather than glibc malloc: under four clients posting 1,000-object envelopes at once,
/// glibc spread freed memory over per-thread pools and the server peaked at 200-250 MB at 1M
/// objects; with jemalloc it peaks at about 165 MB and gives memory back when idle (mimalloc
/// peaked higher still). Measured with `bench/run.sh`.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    concordia::cli::main()
}
