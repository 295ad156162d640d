//! `kartotek-bench`: Kartotek side by side with etcd on one machine, in one run, with a
//! report (`bench/REPORT.md`). See `bench/README.md`.

mod auth_cost;
mod backup;
mod cli;
mod compare;
mod data;
mod etcd;
mod kartotek;
mod limits;
mod metrics;
mod process;
mod procfs;
mod profile;
mod report;
mod results;
mod runner;
mod scale;
mod setup;
mod svg;
mod target;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            cli::Command::Compare(a) => compare::run(*a).await,
            cli::Command::Scale(a) => scale::run(a).await,
            cli::Command::AuthCost(a) => auth_cost::run(a).await,
            cli::Command::Limits(a) => limits::run(a).await,
            cli::Command::Report(a) => {
                let path = report::write(&setup::out_dir(a.out_dir.as_deref()))?;
                println!("{}", path.display());
                Ok(())
            }
        }
    })
}
