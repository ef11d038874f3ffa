# Thin wrapper over CMake: the README's two commands are `make demo` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_PARALLEL ?= 2
FUZZ_TARGETS ?=
JOBS       ?= 2
DEMO_DIR   ?= demo-out

.PHONY: all deps build test demo bench reproduce check-asan fuzz clean loadtest

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

demo: build
	sh scripts/demo.sh $(BUILD)/popsteer $(DEMO_DIR)

bench: build
	cmake --build $(BUILD) -j$(JOBS) --target bench_all
	sh scripts/bench.sh $(BUILD)

# wrk against `popsteer serve` on 127.0.0.1, 10 s at alpha 0 and at alpha 2 (docs/serving.md);
# needs the Last.fm SAE and latents of `make reproduce` (or LOADTEST_SAE / LOADTEST_LATENTS).
loadtest: build
	sh scripts/loadtest.sh $(BUILD)/popsteer

# The study on the four datasets of ../shared/data (about 1.5 h on 2 cores from nothing; reruns
# reuse every trained model): reproduce-out/NAME/report/ and docs/results.md.
reproduce: build
	@sh scripts/install-deps.sh --reproduce
	sh scripts/reproduce.sh $(BUILD)/popsteer reproduce-out docs/results.md

# The whole test suite (including the fuzz corpus replay) and a small end-to-end pipeline with
# AddressSanitizer and UndefinedBehaviorSanitizer. -O1, as the sanitizer manuals advise: training
# at -O0 would take most of the time budget (~10 minutes on 2 cores).
check-asan:
	@sh scripts/install-deps.sh --asan
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DPOPSTEER_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh scripts/pipeline-check.sh $(ASAN_BUILD)/popsteer $(ASAN_BUILD)/pipeline-check

# libFuzzer targets (clang): every parser for FUZZ_SECONDS each, FUZZ_PARALLEL at a time; findings
# and the summary table in $(FUZZ_BUILD)/findings/. FUZZ_TARGETS="cli safetensors" picks targets.
fuzz:
	@sh scripts/install-deps.sh --asan
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOPSTEER_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_targets
	sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_PARALLEL) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
