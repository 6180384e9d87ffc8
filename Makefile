# icp_gate: see README.md.  Every target works on a bare Debian bookworm
# machine as root: make deps installs the packages, and the sources are
# fetched on the way.
#
# Packages: make deps installs what building, the tests and the demo need;
# make deps BENCH=1 adds what make bench needs (util/deps.sh has the
# lists).  The other targets only check for what they need, without apt,
# and run make deps, saying so, when something is missing.  NODEPS=1 skips
# the check (not Debian: install the equivalents yourself; ./configure still
# checks the libraries).

BUILD       = $(CURDIR)/build
ASAN_BUILD  = $(CURDIR)/build-asan
NGINX_BIN   = $(BUILD)/sbin/nginx
ASAN_BIN    = $(ASAN_BUILD)/sbin/nginx
SOURCES     = config $(wildcard *.c src/*.c src/*.h)
DEPS        = build test run $(if $(filter-out 0 no,$(BENCH)),bench)
NEEDS       = need-build need-test need-run need-bench

.PHONY: all asan test test-asan test-plain run bench soak deps clean $(NEEDS)

all: $(NGINX_BIN)

$(NGINX_BIN): $(SOURCES) util/build.sh | need-build
	util/build.sh $(BUILD)

# clang: the packages of the test group
$(ASAN_BIN): $(SOURCES) util/build.sh | need-test
	util/build.sh $(ASAN_BUILD) asan

asan: $(ASAN_BIN)

# the suite twice: against the product binary, then under clang's ASan + UBSan
test: test-plain test-asan

test-plain: need-test $(NGINX_BIN)
	ICP_GATE_NGINX=$(NGINX_BIN) prove -r t/

test-asan: need-test $(ASAN_BIN)
	ICP_GATE_NGINX=$(ASAN_BIN) ICP_GATE_ASAN=1 prove -r t/

run: need-run $(NGINX_BIN)
	util/run.sh $(NGINX_BIN)

bench: need-bench $(NGINX_BIN)
	python3 bench/run.py --nginx $(NGINX_BIN)

# 100 000 cold domains (SOAK_DOMAINS=N): worker memory and descriptors flat
soak: need-bench $(NGINX_BIN)
	python3 bench/run.py --nginx $(NGINX_BIN) --only soak

deps:
	@util/deps.sh install $(DEPS)

# need-GROUP: the packages of GROUP are there, or make deps is run, loudly;
# one at a time, so that two of them never run apt at once
need-test need-run need-bench: need-build

$(NEEDS): need-%:
ifeq ($(NODEPS),)
	@missing=$$(util/deps.sh check $*) || { \
	    echo "icp_gate: missing packages: $$missing; running make deps$(if $(filter bench,$*), BENCH=1)"; \
	    $(MAKE) --no-print-directory deps $(if $(filter bench,$*),BENCH=1); }
endif

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
