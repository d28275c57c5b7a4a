//! tcpping-diag: TCP ping that says why a ping was lost.
fn main() {
    std::process::exit(tcpping_diag::run());
}
