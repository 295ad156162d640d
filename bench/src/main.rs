//! `kartotek-bench`: Kartotek vs etcd benchmark (work in progress).

fn main() -> anyhow::Result<()> {
    println!("kartotek-bench: not yet implemented");
    Ok(())
}
