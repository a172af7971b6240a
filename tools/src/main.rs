//! The `keeperkit` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = keeperkit_tools::Cli::parse();
    keeperkit_tools::allocator::without_huge_pages();
    if matches!(cli.command, keeperkit_tools::Command::Serve(_)) {
        keeperkit_tools::allocator::serve_purge_delay();
    } else {
        keeperkit_tools::allocator::keep_freed_memory();
    }
    keeperkit_tools::main_with(cli)
}
