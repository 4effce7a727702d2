#[test]
fn dump() {
    let d = c24_chatcore::http::openapi::document();
    std::fs::write("/tmp/oa/doc.json", serde_json::to_string_pretty(&d).unwrap()).unwrap();
}
