//! `include/zerorelay.h` is generated from the source by cbindgen; this test
//! fails when the committed header is stale (`make gen` rewrites it).

#[test]
fn the_committed_header_matches_the_source() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen understands the crate")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    // The Go module carries a copy: `go get` fetches only sdk-go/.
    let paths = [
        format!("{dir}/include/zerorelay.h"),
        format!("{dir}/../../sdk-go/include/zerorelay.h"),
    ];
    if std::env::var_os("ZERORELAY_UPDATE_HEADER").is_some() {
        for path in &paths {
            std::fs::write(path, &generated).unwrap();
        }
        return;
    }
    for path in &paths {
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is stale: run `make gen` and commit the result"
        );
    }
    assert!(generated.contains("zr_client_next_events"));
}
