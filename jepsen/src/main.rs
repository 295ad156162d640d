//! `kartotek-jepsen`: fault-injection harness (work in progress).

fn main() -> anyhow::Result<()> {
    println!("kartotek-jepsen: not yet implemented");
    Ok(())
}
