# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the whole test suite).

.PHONY: demo test bench

# Build `ds`, then validate the quickstart model, check its formatting, and plan it against an empty state.
demo:
	cargo build --release -p cli
	./target/release/ds validate -C examples/quickstart
	./target/release/ds fmt --check -C examples/quickstart
	./target/release/ds plan -C examples/quickstart --state target/demo/state.json
	@echo "demo: the quickstart model is valid, in canonical layout, and planned (nothing is applied yet)"

# Every test of the workspace: unit tests, the invalid-model corpus, and the CLI run as a user runs it.
test:
	cargo test --workspace

# The validate benchmark of docs/benchmarks.md.
bench:
	cargo xtask bench-validate
