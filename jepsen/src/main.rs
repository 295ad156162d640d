//! `kartotek-jepsen`: fault-injection harness for Kartotek (see `jepsen/README.md`).

fn main() -> std::process::ExitCode {
    kartotek_jepsen::cli::main()
}
