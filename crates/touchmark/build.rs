//! Declares what this crate's tests need from the machine (see `touchmark-testenv`).

fn main() {
    touchmark_testenv::declare(&[
        touchmark_testenv::POSTGRES,
        touchmark_testenv::OPENSSL,
        touchmark_testenv::MOSQUITTO,
        touchmark_testenv::MOSQUITTO_PUB,
        touchmark_testenv::MOSQUITTO_SUB,
        touchmark_testenv::SCRIPT,
        touchmark_testenv::PKILINT,
        touchmark_testenv::PKILINT_CHAIN,
        touchmark_testenv::SOFTHSM2_UTIL,
        touchmark_testenv::PKCS11_TOOL,
        touchmark_testenv::PLAYWRIGHT,
        touchmark_testenv::CHROMIUM,
        touchmark_testenv::IMGTOOL,
    ]);
}
