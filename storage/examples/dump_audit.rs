//! Prints the audit events at the given seqs of a node's data directory (debugging aid):
//! `cargo run --example dump_audit -- DATA_DIR SEQ...` (on a copy: opening may finish an
//! interrupted snapshot install).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: dump_audit DATA_DIR SEQ...")?;
    let store = kartotek_storage::Store::open(
        std::path::Path::new(&dir),
        kartotek_storage::StoreConfig::default(),
    )?;
    for seq in args {
        let seq: u64 = seq.parse()?;
        let page = store
            .reader
            .audit_events(&kartotek_storage::AuditSelector::All, seq, 1)?;
        for e in page.value.events {
            println!("{} {:?}", e.seq, e.event);
        }
    }
    Ok(())
}
