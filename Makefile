# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the whole test suite).

.PHONY: demo test bench bench-apply bench-check bench-connect bench-merge bench-serve stack-up stack-down

POSTGRES_KINDS = --target postgres_schema --target postgres_table --target postgres_view \
                 --target postgres_role --target postgres_grant

# The main job end to end: start the local stack (PostgreSQL, MariaDB, Kafka, Connect with Debezium), check and apply
# the quickstart model, then move a change from the shop's database to the landing tables (scripts/demo).
demo:
	scripts/demo

# Every test of the workspace, with the real services of the local stack.
test: stack-up
	cargo test --workspace
	scripts/check-workflows
	scripts/schemathesis

# The validate benchmark of docs/benchmarks.md.
bench:
	cargo xtask bench-validate

stack-up:
	scripts/stack up all

stack-down:
	scripts/stack down

# Apply and refresh of a generated model with about 1,000 Postgres resources, against the stack's PostgreSQL
# (docs/benchmarks.md). It uses a database of its own, ds_bench_apply, made afresh.
bench-apply: stack-up
	cargo build --release -p cli
	rm -rf target/bench-apply && cargo xtask gen-model --out target/bench-apply/model \
	  --stores 22 --datasets-per-store 10 --workspaces 12
	sed -i 's/    port       = 5432/    port       = 55432/; s/    database   = "datasurface"/    database   = "ds_bench_apply"/' \
	  target/bench-apply/model/ecosystem.ds.hcl
	set -a && . ./.stack/env && psql "$$DS_STACK_PG_URL" -qc "DROP DATABASE IF EXISTS ds_bench_apply WITH (FORCE)" \
	  -c "CREATE DATABASE ds_bench_apply"
	set -a && . ./.stack/env && /usr/bin/time -f "apply: %e s, %M KB peak" ./target/release/ds apply \
	  -C target/bench-apply/model --state target/bench-apply/state.json --auto-approve --parallelism 10 \
	  $(POSTGRES_KINDS) 2>&1 | grep -E "^(Apply|apply:)"
	set -a && . ./.stack/env && /usr/bin/time -f "refresh and plan: %e s, %M KB peak" ./target/release/ds plan \
	  -C target/bench-apply/model --state target/bench-apply/state.json $(POSTGRES_KINDS) 2>&1 | tail -2

# Refresh of 500 Kafka Connect connectors (docs/benchmarks.md): creates 500 FileStreamSink connectors on the
# stack's Connect worker, times `ds plan` against a state that records them, and deletes them again.
bench-connect: stack-up
	scripts/bench-connect

# Ingestion and merge of a 1,000,000-row snapshot, then of one with 1% changed, 0.1% deleted and 0.1% new
# (docs/benchmarks.md): rows/s, merge time against a plain INSERT ... SELECT, peak RSS.
bench-merge: stack-up
	scripts/bench-merge

# `ds check` between two git revisions of the 10,000-dataset model (docs/benchmarks.md).
bench-check:
	scripts/bench-check

# `ds serve` start-up, lookup latency and throughput on the 10,000-dataset model (docs/benchmarks.md).
bench-serve:
	scripts/bench-serve
