//! The `kartotek` binary. Everything lives in the library; see `kartotek --help`.

fn main() -> std::process::ExitCode {
    kartotek_node::cli::run()
}
