//! Declares what this crate's tests need from the machine (see `touchmark-testenv`).

fn main() {
    touchmark_testenv::declare(&[touchmark_testenv::POSTGRES, touchmark_testenv::OPENSSL]);
}
