# pygate - the two commands a newcomer needs:
#   make demo   build and run the main demonstration
#   make test   build and run the whole suite on every CPython found
# Each first installs the Debian packages it needs (as root; otherwise it
# names them and the one command that installs them: sudo make deps).
PYTHON ?= python3
# PYTHON as a command, or else as one of pyenv's versions that is installed
# but not active (`make demo PYTHON=python3.13` on a pyenv machine).
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
PYTHON_EXE := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' \
  2>/dev/null || for p in $(PYENV_VERSIONS)/*/bin/$(PYTHON); do \
  [ -x "$$p" ] && echo "$$p"; done | sort -V | tail -n 1)
DEMO_BUILD := build/demo/$(notdir $(PYTHON_EXE))
JOBS := $(shell nproc 2>/dev/null || echo 2)
MAKEFLAGS += --no-print-directory

.PHONY: all demo test deps python torture tsan-ft bench soak fuzz clean

# The Debian packages every build and test needs (tools/deps.sh's list).
deps:
	tools/deps.sh install

# The CPython `make demo` would use.
python:
	@[ -n "$(PYTHON_EXE)" ] || { echo "make: no Python named $(PYTHON)" \
	  "(not a command, nor in $(PYENV_VERSIONS))" >&2; exit 1; }
	@echo $(PYTHON_EXE)

# The demonstration's four programs only, quietly (the build's output goes
# to build/demo/build.log and is shown only if the build fails).
all: $(DEMO_BUILD)/Makefile
	@cmake --build $(DEMO_BUILD) -j $(JOBS) \
	  --target json_threads json_parallel repeated_calls pygate_events \
	  >$(DEMO_BUILD)/build.log 2>&1 || { cat $(DEMO_BUILD)/build.log; exit 1; }

$(DEMO_BUILD)/Makefile:
	@tools/deps.sh ensure demo
	@$(MAKE) -s python >/dev/null
	@mkdir -p $(DEMO_BUILD)
	@cmake -S . -B $(DEMO_BUILD) -DPython_EXECUTABLE=$(PYTHON_EXE) \
	  -DCMAKE_BUILD_TYPE=Release -DPYGATE_TESTS=OFF -DPYGATE_BENCH=OFF \
	  >$(DEMO_BUILD)/configure.log 2>&1 \
	  || { cat $(DEMO_BUILD)/configure.log; exit 1; }

demo: all
	@$(DEMO_BUILD)/examples/json_threads 2000
	@$(DEMO_BUILD)/examples/json_parallel 5000
	@$(DEMO_BUILD)/examples/repeated_calls 1000000
	@PYTHONPATH=$(DEMO_BUILD)/examples $(PYTHON_EXE) examples/extension/events_demo.py

test:
	@tools/deps.sh ensure test
	tests/run_matrix.sh

# 10,002 finalization runs and 10,002 Py_EndInterpreter runs per CPython
# (3,334 per thread count), plus the PEP 788 and shared-guard ones; long:
# about half an hour per CPython on two cores, more under the sanitizers.
torture:
	PYGATE_TORTURE_RUNS=3334 PYGATE_CTEST_ARGS="-R test_torture" tests/run_matrix.sh

# The whole suite under ThreadSanitizer on a free-threaded CPython 3.14
# built with TSan itself (configure --with-thread-sanitizer, by clang), so
# that TSan sees CPython's own synchronization, not only pygate's.  Built
# from PYGATE_CPYTHON_SRC (a CPython 3.14 source tarball) the first time.
tsan-ft:
	@tools/deps.sh ensure test
	PYGATE_TSAN_FT=1 PYGATE_NO_SID=1 PYGATE_ONLY="built with TSan" tests/run_matrix.sh

# pygate beside every alternative, on every CPython found (PYGATE_ONLY=3.12
# for one): tables on stdout, CSV and a PNG plot under bench/results/.
bench:
	bench/run_bench.sh

# An hour of 16 native threads entering with thread, pool and interpreter
# churn (tests/soak.c), sampled every minute, on $(PYTHON): the samples in
# bench/results/soak.csv, plotted in bench/results/soak.png.  SOAK_SECONDS
# and SOAK_EVERY change the length and the sampling.
SOAK_SECONDS ?= 3600
SOAK_EVERY ?= 60
SOAK_BUILD := build/soak/$(notdir $(PYTHON_EXE))
soak:
	@mkdir -p $(SOAK_BUILD) bench/results
	@cmake -S . -B $(SOAK_BUILD) -DPython_EXECUTABLE=$(PYTHON_EXE) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYGATE_BENCH=OFF \
	  -DPYGATE_EXAMPLES=OFF >$(SOAK_BUILD)/configure.log 2>&1 \
	  || { cat $(SOAK_BUILD)/configure.log; exit 1; }
	@cmake --build $(SOAK_BUILD) -j $(JOBS) --target soak \
	  >$(SOAK_BUILD)/build.log 2>&1 || { cat $(SOAK_BUILD)/build.log; exit 1; }
	$(SOAK_BUILD)/tests/soak $(SOAK_SECONDS) $(SOAK_EVERY) bench/results/soak.csv
	@command -v gnuplot >/dev/null && gnuplot -e "csv='bench/results/soak.csv'; \
	  png='bench/results/soak.png'" tests/plot_soak.gp \
	  && echo "plot: bench/results/soak.png" || true

# The API fuzzer (fuzz/fuzz_api.c, libFuzzer with ASan+UBSan, clang) for
# an hour on $(PYTHON), adding what it finds to fuzz/corpus; FUZZ_SECONDS
# changes the length.  Crashes are written to build/fuzz/.../crash-*.
FUZZ_SECONDS ?= 3600
FUZZ_BUILD := build/fuzz/$(notdir $(PYTHON_EXE))
fuzz:
	@mkdir -p $(FUZZ_BUILD)
	@cmake -S . -B $(FUZZ_BUILD) -DPython_EXECUTABLE=$(PYTHON_EXE) \
	  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DPYGATE_FUZZ=ON -DPYGATE_TESTS=OFF \
	  -DPYGATE_BENCH=OFF -DPYGATE_EXAMPLES=OFF \
	  >$(FUZZ_BUILD)/configure.log 2>&1 \
	  || { cat $(FUZZ_BUILD)/configure.log; exit 1; }
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_api \
	  >$(FUZZ_BUILD)/build.log 2>&1 || { cat $(FUZZ_BUILD)/build.log; exit 1; }
	cd $(FUZZ_BUILD)/fuzz && ASAN_OPTIONS=detect_leaks=0 ./fuzz_api \
	  -detect_leaks=0 -timeout=60 -rss_limit_mb=4096 -max_len=144 \
	  -print_final_stats=1 \
	  -max_total_time=$(FUZZ_SECONDS) $(CURDIR)/fuzz/corpus

clean:
	rm -rf build
