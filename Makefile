# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the whole test suite).

.PHONY: demo test bench stack-up stack-down

POSTGRES_KINDS = --target postgres_schema --target postgres_table --target postgres_view \
                 --target postgres_role --target postgres_grant

# Build `ds`, start the local stack (PostgreSQL), validate and format-check the quickstart, apply its
# Postgres part (schemas, tables, views, roles, grants), then show that nothing is left to do there.
demo: stack-up
	cargo build --release -p cli
	./target/release/ds validate -C examples/quickstart
	./target/release/ds fmt --check -C examples/quickstart
	set -a && . ./.stack/env && ./target/release/ds apply -C examples/quickstart \
	  --state target/demo/state.json --auto-approve $(POSTGRES_KINDS)
	set -a && . ./.stack/env && ./target/release/ds plan -C examples/quickstart \
	  --state target/demo/state.json $(POSTGRES_KINDS)
	@echo "demo: the quickstart's Postgres part is applied (psql \"\$$(. ./.stack/env && echo \$$DS_STACK_PG_URL)\" to look)"

# Every test of the workspace, with the real services of the local stack.
test: stack-up
	cargo test --workspace

# The validate benchmark of docs/benchmarks.md.
bench:
	cargo xtask bench-validate

stack-up:
	scripts/stack up

stack-down:
	scripts/stack down
