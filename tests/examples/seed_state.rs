//! Writes the state a successful apply of a model would leave, into the model's default local state file
//! (`<model>/.ds/state.json`): the benchmarks plan against it to measure a plan with nothing to do.
//!
//! `cargo run --release -p tests --example seed_state -- <model dir>`

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: seed_state <model dir>");
    let dir = std::path::Path::new(&dir);
    let sources = planner::source::read_dir(dir).expect("the model reads");
    let (model, diagnostics) = planner::check(&sources);
    assert!(!diagnostics.has_errors(), "the model is invalid");
    let graph = planner::compile::compile(&model).expect("the model compiles");
    let mut recorded = state::State::new();
    for resource in graph.resources() {
        recorded.upsert(planner::plan::recorded(resource));
    }
    let path = dir.join(".ds/state.json");
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(dir.join(".ds")).expect("the state directory is writable");
    state::Backend::write(&state::LocalBackend::new(path.clone()), &mut recorded)
        .expect("the state writes");
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}: {} resources, {bytes} bytes",
        path.display(),
        recorded.resources.len()
    );
}
