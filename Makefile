# The two commands of the quickstart: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-all lint setup setup-test bench mutants clean

run: setup
	$(BIN)/imagestudio serve

# Test processes: the suite mostly waits (subprocesses, browsers, databases), so more than the cores.
TEST_PROCESSES ?= 4

# The tests not marked slow, then, with CI=true (or as test-all), the slow ones: scripts/run-tests.py.
test: setup-test
	$(BIN)/python scripts/run-tests.py -n $(TEST_PROCESSES) --dist loadgroup --durations=30

test-all: setup-test
	IMAGESTUDIO_TEST_ALL=true $(BIN)/python scripts/run-tests.py -n $(TEST_PROCESSES) --dist loadgroup --durations=30

lint: setup-test
	$(BIN)/ruff check src tests bench scripts

setup: $(VENV)/.installed-app
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-app: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml scripts/setup-test-env.sh
	$(PYTHON) -m venv $(VENV)
	PYTHON=$(BIN)/python sh scripts/setup-test-env.sh
	touch $(VENV)/.installed-app $@

bench: setup-test
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/session_open.py
	$(BIN)/python bench/diffusers_batching.py

# Mutation testing (not part of `make test`): the functions below are mutated one change at a time and
# each mutant runs only the tests of [tool.mutmut] that execute it; docs/testing.md has the score.
# mutants-score.py prints the score of these functions and every mutant not killed. Results are kept in
# mutants/ (`mutmut show NAME` shows one). MUTANT_CHILDREN runs in parallel.
MUTANT_CHILDREN ?= 2
MUTANTS ?= \
	'imagestudio.generations.fenced.x__statement*' 'imagestudio.generations.fenced.x__fenced*' \
	'imagestudio.generations.fenced.x__holds*' 'imagestudio.generations.fenced.x__state*' \
	'imagestudio.generations.fenced.x_lease_state*' 'imagestudio.generations.fenced.x__status_changed*' \
	'imagestudio.generations.fenced.x_record_*' 'imagestudio.generations.fenced.x_keep_batch_image*' \
	'imagestudio.generations.fenced.x_drop_batch_images*' 'imagestudio.generations.fenced.x_finish_*' \
	'imagestudio.generations.fenced.x_requeue*' 'imagestudio.generations.fenced.x_flag_cleanup*' \
	'imagestudio.generations.queue.x_claim*' 'imagestudio.generations.queue.x__claim*' \
	'imagestudio.generations.queue.x__is_claim_conflict*' 'imagestudio.generations.queue.x_fence*' \
	'imagestudio.generations.queue.x_renew*' 'imagestudio.generations.queue.x_release*' \
	'imagestudio.generations.queue.x_reap*' 'imagestudio.generations.queue.x_retry_delay*' \
	'imagestudio.generations.queue.x_sweep*' \
	'imagestudio.generations.limits.x_consume*' 'imagestudio.generations.limits.x_limits_for*' \
	'imagestudio.kit.counters.x_add*' 'imagestudio.kit.counters.x_window_start*' \
	'imagestudio.kit.counters.x_seconds_left*' \
	'imagestudio.generations.service.x_replay_of*' \
	'imagestudio.generations.submit.x_check_idempotency_key*' \
	'imagestudio.accounts.deps.*' \
	'imagestudio.assets.images.x_decode_upload*' 'imagestudio.assets.images.x__sniff_format*' \
	'imagestudio.assets.images.x__check_pixels*' 'imagestudio.assets.images.x__webp_*' \
	'imagestudio.assets.images.x__normalize_mode*' 'imagestudio.assets.images.x__to_srgb*' \
	'imagestudio.assets.images.x__apply_orientation*' 'imagestudio.assets.images.x__encode_upload*'

mutants: setup-test
	env -u PYTHONPATH IMAGESTUDIO_TEST_DATABASES=sqlite $(BIN)/mutmut run --max-children $(MUTANT_CHILDREN) $(MUTANTS)
	env -u PYTHONPATH $(BIN)/python scripts/mutants-score.py $(MUTANTS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache mutants
