//! Compile-time checks of the macros: every supported signature builds, every misuse
//! fails with the checked-in message.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/hub/pass/*.rs");
    t.compile_fail("tests/ui/hub/fail/*.rs");
    t.pass("tests/ui/client/pass/*.rs");
    t.compile_fail("tests/ui/client/fail/*.rs");
}
