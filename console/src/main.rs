//! c24-console: the ratatui admin console (not built yet; see issue 4).

fn main() {
    eprintln!(
        "c24-console is not built yet. Start the chat core with `cargo run --release -p c24-chatcore --bin c24-core`."
    );
    std::process::exit(2);
}
