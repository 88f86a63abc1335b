fn main() -> std::process::ExitCode {
    concordia::cli::main()
}
