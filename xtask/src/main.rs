//! `cargo xtask`: the repo's own automation (demo, bench, images, static check).

fn main() -> anyhow::Result<()> {
    Ok(())
}
