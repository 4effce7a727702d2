//! c24-loadgen: the load generator (not built yet; see issue 5).

fn main() {
    eprintln!("c24-loadgen is not built yet.");
    std::process::exit(2);
}
