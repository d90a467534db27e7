# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the whole test suite).

.PHONY: demo test bench

# Build `ds`, then validate the quickstart model and check its formatting.
demo:
	cargo build --release -p cli
	./target/release/ds validate -C examples/quickstart
	./target/release/ds fmt --check -C examples/quickstart
	@echo "demo: the quickstart model is valid and in canonical layout"

# Every test of the workspace: unit tests, the invalid-model corpus, and the CLI run as a user runs it.
test:
	cargo test --workspace

# The validate benchmark of docs/benchmarks.md.
bench:
	cargo xtask bench-validate
