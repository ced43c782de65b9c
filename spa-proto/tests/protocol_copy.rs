//! The project's copy of the wire format (docs/PROTOCOL.md) must agree byte for
//! byte with the contract in ../shared/PROTOCOL.md.

#[test]
fn docs_protocol_is_the_contract_verbatim() -> std::io::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let ours = std::fs::read(format!("{root}/docs/PROTOCOL.md"))?;
    let contract = std::fs::read(format!("{root}/../shared/PROTOCOL.md"))?;
    assert!(
        ours == contract,
        "docs/PROTOCOL.md differs from ../shared/PROTOCOL.md: copy it again"
    );
    Ok(())
}
