//! Declares what this crate's tests need from the machine (see `touchmark-testenv`).

fn main() {
    touchmark_testenv::declare(&[
        touchmark_testenv::POSTGRES,
        touchmark_testenv::OPENSSL,
        touchmark_testenv::OPENAPI_SPEC_VALIDATOR,
        touchmark_testenv::SCHEMATHESIS,
        touchmark_testenv::OPENHTF,
        touchmark_testenv::PROMTOOL,
        touchmark_testenv::STANDARD_WEBHOOKS,
        touchmark_testenv::IMGTOOL,
        touchmark_testenv::PYTHON3,
        touchmark_testenv::AGE,
        touchmark_testenv::AGE_KEYGEN,
        touchmark_testenv::SECTXT,
        touchmark_testenv::CVSS,
        touchmark_testenv::CYCLONEDX,
        touchmark_testenv::CSAF,
    ]);
}
