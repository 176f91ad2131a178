# gcpin: build, test, demo, benchmarks, install.
#
#   make            the library: target/release/libgcpin.{so,a} and include/gcpin.h, and
#                   target/release/libgc.so.1 (libgc's ABI, for binaries built for libgc)
#   make demo       builds everything and runs the demo
#   make test       cargo fmt --check, cargo clippy, cargo test + every C test in c-tests/ (three
#                   times: normally, under GCPIN_STRESS=$(STRESS_N), and under GCPIN_CONCURRENT=1,
#                   where automatic cycles mark concurrently) + the libgc drop-in checks (w3m on
#                   libgc and on gcpin's libgc.so.1); lists the failures, then ends with one
#                   "N passed, N failed" line
#   make stress     the long runs: the C suite with a collection at every allocation (also
#                   with GCPIN_CONCURRENT=1), the model test with 10^6 operations (also with
#                   GCPIN_CONCURRENT=1) (scripts/stress.sh)
#   make examples   builds examples/*.c into build/examples/
#   make bench      benchmarks (writes BENCHMARKS.md)
#   make valgrind   C tests under valgrind; make sanitizers: Rust tests under Miri, ASan (not in make test)
#   make install    PREFIX=/usr/local: the library, the headers, gcpin.pc, the CMake package;
#                   libgc.so.1 under lib/gcpin/ (LIBGC_DROP_IN=1: also in lib/, shadowing libgc)
#   make clean
#
# System packages (libgc-dev, liburing-dev, pkg-config) come from scripts/deps.sh,
# which the targets that need them call.

SHELL := /bin/bash
.NOTPARALLEL:

PREFIX   ?= /usr/local
CC       ?= cc
CFLAGS   ?= -O2 -g
C_FLAGS   = $(CFLAGS) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Werror -Iinclude
LIBDIR    = target/release
C_LIBS    = -L$(LIBDIR) -lgcpin -Wl,-rpath,$(CURDIR)/$(LIBDIR) -lpthread -ldl -lm
# The stress pass collects every STRESS_N allocations (per thread). Sized so that
# the whole stress pass of the C suite takes well under a minute on 2 cores: it
# measured about 20 s of CPU time at 2000 (about 50 s at 1000).
STRESS_N ?= 2000
# The Rust tests (make test CARGO_TEST=true skips them).
CARGO_TEST ?= cargo test --release
VERSION   = $(shell sed -n -E 's/^version = "(.*)"/\1/p' Cargo.toml | head -n 1)
SOVERSION = $(firstword $(subst ., ,$(VERSION)))
# libgc's compatible headers, installed under include/gcpin/ (see gcpin.pc).
LIBGC_HEADERS = gc.h gc_version.h gc_config_macros.h gc_backptr.h gc_pthread_redirects.h
LIBGC_DROP_IN ?= 0

C_TESTS   = $(patsubst c-tests/%.c,build/c-tests/%,$(wildcard c-tests/test_*.c))
EXAMPLES  = $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))

# Compiles and links one C file against the library; files that include
# liburing.h also get liburing (through pkg-config).
define c_link
	@mkdir -p $(@D)
	$(CC) $(C_FLAGS) -o $@ $< $(C_LIBS) \
	    $$(if grep -q '^[[:space:]]*#[[:space:]]*include[[:space:]]*<liburing.h>' $<; then pkg-config --cflags --libs liburing; fi)
endef

.PHONY: all deps lib header-check lint test stress c-tests examples demo bench valgrind sanitizers install clean libgc-test

all: lib

deps:
	@bash scripts/deps.sh

lib:
	cargo build --release
	@ln -sf libgcpin.so $(LIBDIR)/libgcpin.so.$(SOVERSION)
	@$(MAKE) --no-print-directory $(LIBDIR)/libgc.so.1

# libgc.so.1: the whole static library linked into a shared object with libgc's
# SONAME, exporting what libgc.map lists (unversioned, as Debian's libgc1 does).
# The same object code as libgcpin.a, linked in a fraction of a second, so the
# two libraries cannot drift apart.
$(LIBDIR)/libgc.so.1: $(LIBDIR)/libgcpin.a libgc.map
	$(CC) -shared -o $@ -Wl,-soname,libgc.so.1 -Wl,--version-script=libgc.map \
	    -Wl,--whole-archive $(LIBDIR)/libgcpin.a -Wl,--no-whole-archive -lpthread -ldl -lm

# build.rs regenerates include/gcpin.h on every build; the committed copy must be
# what the sources generate. Outside a git checkout there is nothing to compare.
header-check: lib
	@if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    echo "header-check: not a git checkout, skipped"; \
	elif ! git ls-files --error-unmatch include/gcpin.h >/dev/null 2>&1; then \
	    echo "header-check: include/gcpin.h is not committed; commit the generated header" >&2; exit 1; \
	elif ! git diff --quiet -- include/gcpin.h; then \
	    echo "header-check: include/gcpin.h is stale: the build regenerated it from src/ and it" >&2; \
	    echo "differs from the committed copy. Review and commit it:" >&2; \
	    git --no-pager diff --stat -- include/gcpin.h >&2; exit 1; \
	else \
	    echo "header-check: include/gcpin.h is up to date"; \
	fi

build/c-tests/%: c-tests/%.c c-tests/check.h include/gcpin.h $(addprefix include/,$(LIBGC_HEADERS))
	$(c_link)

# A program NOT linked against the library: it opens it with dlopen (run by
# test_threads).
build/c-tests/dlopen_helper: c-tests/dlopen_helper.c
	@mkdir -p $(@D)
	$(CC) $(C_FLAGS) -o $@ $< -lpthread -ldl
build/c-tests/test_threads: build/c-tests/dlopen_helper
# The libgc-style GCBench is the benchmark's own source (benches/).
build/c-tests/test_libgc_gcbench: benches/libgc_gcbench.c

# A library with __thread variables and a .bss, loaded with dlopen by test_roots.
build/c-tests/libtls_helper.so: c-tests/tls_helper.c
	@mkdir -p $(@D)
	$(CC) $(C_FLAGS) -fPIC -shared -o $@ $<
build/c-tests/test_roots: build/c-tests/libtls_helper.so

build/examples/%: examples/%.c include/gcpin.h
	$(c_link)

c-tests: lib
	@$(MAKE) --no-print-directory $(C_TESTS)

examples: lib
	@$(MAKE) --no-print-directory $(EXAMPLES)

# The total: cargo test's "test result:" lines plus the three C passes. A cargo test that
# fails without a result line (a build error) counts as one failure.
# cargo fmt --check and cargo clippy --all-targets -D warnings: one pass or one
# failure each in make test's total.
lint:
	@mkdir -p build; lp=0; lf=0; \
	if cargo fmt --check >build/fmt.log 2>&1; then echo "lint: ok cargo fmt --check"; lp=$$((lp + 1)); \
	else echo "lint: FAIL cargo fmt --check (run cargo fmt):"; head -40 build/fmt.log; lf=$$((lf + 1)); fi; \
	if cargo clippy --all-targets -- -D warnings >build/clippy.log 2>&1; then echo "lint: ok cargo clippy"; lp=$$((lp + 1)); \
	else echo "lint: FAIL cargo clippy --all-targets -- -D warnings:"; grep -E -A8 '^(error|warning)' build/clippy.log | head -60; lf=$$((lf + 1)); fi; \
	echo "$$lp $$lf" >build/lint.counts; [ "$$lf" -eq 0 ]

test: deps lib header-check c-tests
	@mkdir -p build; rc=0; rm -f build/*.counts.failures; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(CARGO_TEST) 2>&1 | tee build/cargo-test.log; cargo_rc=$${PIPESTATUS[0]}; \
	read -r cp cf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { \
	        if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } \
	    END { print p + 0, f + 0 }' build/cargo-test.log); \
	if [ "$$cargo_rc" -ne 0 ]; then rc=1; [ "$$cf" -gt 0 ] || cf=$$((cf + 1)); fi; \
	bash scripts/run-c-tests.sh --label c-tests --counts build/c-tests.counts $(C_TESTS) || rc=1; \
	GCPIN_STRESS=$(STRESS_N) bash scripts/run-c-tests.sh --label "c-tests under GCPIN_STRESS=$(STRESS_N)" \
	    --counts build/c-tests-stress.counts $(C_TESTS) || rc=1; \
	GCPIN_CONCURRENT=1 bash scripts/run-c-tests.sh --label "c-tests under GCPIN_CONCURRENT=1 (concurrent marking)" \
	    --counts build/c-tests-concurrent.counts $(C_TESTS) || rc=1; \
	echo "== libgc drop-in (w3m on libgc and on gcpin, symbols, install, pkg-config)"; \
	rm -f build/libgc-dropin.counts; \
	bash scripts/libgc-dropin-test.sh --counts build/libgc-dropin.counts >build/libgc-dropin.log; drc=$$?; \
	sed 's/^/  libgc-dropin: /' build/libgc-dropin.log; [ "$$drc" -eq 0 ] || rc=1; \
	[ -s build/libgc-dropin.counts ] || { echo "  libgc-dropin: FAIL (no summary)"; echo "0 1" >build/libgc-dropin.counts; }; \
	read -r p1 f1 < build/c-tests.counts; read -r p2 f2 < build/c-tests-stress.counts; \
	read -r p3 f3 < build/libgc-dropin.counts; read -r p4 f4 < build/lint.counts; \
	read -r p5 f5 < build/c-tests-concurrent.counts; \
	{ grep -E '^test .* FAILED$$' build/cargo-test.log | sed 's/^/cargo test: /'; \
	  cat build/c-tests.counts.failures build/c-tests-stress.counts.failures \
	      build/c-tests-concurrent.counts.failures 2>/dev/null; \
	  grep -E 'FAIL' build/libgc-dropin.log | sed 's/^/libgc-dropin: /'; } >build/failures.log; \
	if [ -s build/failures.log ]; then echo "== failures:"; sed 's/^/  /' build/failures.log; fi; \
	echo "$$((cp + p1 + p2 + p3 + p4 + p5)) passed, $$((cf + f1 + f2 + f3 + f4 + f5)) failed"; \
	exit $$rc

stress: deps lib c-tests
	@bash scripts/stress.sh

demo: deps lib examples
	@if [ -f scripts/demo.sh ]; then \
	    bash scripts/demo.sh; \
	else \
	    GCPIN_TRACE=1 build/examples/graph_demo; \
	fi
	@echo "== libgc drop-in: the Debian w3m binary on libgc and on gcpin's libgc.so.1"
	@bash scripts/libgc-dropin-test.sh --measure

bench: deps lib
	bash scripts/bench.sh

valgrind: deps lib c-tests
	bash scripts/valgrind-c-tests.sh $(C_TESTS)

sanitizers:
	bash scripts/rust-sanitizers.sh

build/gcpin.pc: gcpin.pc.in Cargo.toml
	@mkdir -p build
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< >$@

build/gcpinConfigVersion.cmake: cmake/gcpinConfigVersion.cmake.in Cargo.toml
	@mkdir -p build
	sed -e 's|@VERSION@|$(VERSION)|g' $< >$@

# libgcpin.so.$(VERSION) with the links libgcpin.so -> libgcpin.so.0 -> it;
# libgc.so.1 in lib/gcpin/, where only a program that asks finds it
# (LD_LIBRARY_PATH=$(PREFIX)/lib/gcpin); with LIBGC_DROP_IN=1 also in lib/,
# where it shadows the system's libgc for every program.
install: lib build/gcpinConfigVersion.cmake
	@rm -f build/gcpin.pc
	@$(MAKE) --no-print-directory build/gcpin.pc PREFIX=$(PREFIX)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/gcpin $(DESTDIR)$(PREFIX)/lib/cmake/gcpin \
	    $(DESTDIR)$(PREFIX)/include/gcpin/gc
	install -m 755 $(LIBDIR)/libgcpin.so $(DESTDIR)$(PREFIX)/lib/libgcpin.so.$(VERSION)
	ln -sf libgcpin.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libgcpin.so.$(SOVERSION)
	ln -sf libgcpin.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libgcpin.so
	install -m 644 $(LIBDIR)/libgcpin.a $(DESTDIR)$(PREFIX)/lib/libgcpin.a
	install -m 755 $(LIBDIR)/libgc.so.1 $(DESTDIR)$(PREFIX)/lib/gcpin/libgc.so.1
	@if [ "$(LIBGC_DROP_IN)" = 1 ]; then \
	    echo "install: libgc.so.1 also in $(PREFIX)/lib: it shadows the system libgc"; \
	    install -m 755 $(LIBDIR)/libgc.so.1 $(DESTDIR)$(PREFIX)/lib/libgc.so.1; \
	fi
	install -m 644 include/gcpin.h $(DESTDIR)$(PREFIX)/include/gcpin.h
	for h in $(LIBGC_HEADERS); do \
	    install -m 644 include/$$h $(DESTDIR)$(PREFIX)/include/gcpin/$$h; \
	    install -m 644 include/gc/$$h $(DESTDIR)$(PREFIX)/include/gcpin/gc/$$h; \
	done
	install -m 644 build/gcpin.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/gcpin.pc
	install -m 644 cmake/gcpinConfig.cmake build/gcpinConfigVersion.cmake $(DESTDIR)$(PREFIX)/lib/cmake/gcpin/
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	cargo clean
	rm -rf build
