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

# nginx-rtmp-module builds: the product (build/) and the sanitizer one;
# nginx-http-flv-module builds, the same two (build-flv*/)
BUILD          = $(CURDIR)/build
ASAN_BUILD     = $(CURDIR)/build-asan
FLV_BUILD      = $(CURDIR)/build-flv
FLV_ASAN_BUILD = $(CURDIR)/build-flv-asan
NGINX_BIN      = $(BUILD)/sbin/nginx
ASAN_BIN       = $(ASAN_BUILD)/sbin/nginx
FLV_BIN        = $(FLV_BUILD)/sbin/nginx
FLV_ASAN_BIN   = $(FLV_ASAN_BUILD)/sbin/nginx
# the tests of what differs between the rtmp host modules
FLV_TESTS      = t/10-rtmp.t t/21-rtmp-unix.t t/22-rtmp-chain.t t/23-http-flv.t \
                 t/34-redirects.t
DEPS           = build test run $(if $(filter-out 0 no,$(BENCH)),bench) \
                 $(if $(filter-out 0 no,$(DEB)),deb)
NEEDS          = need-build need-test need-run need-bench need-deb
DEB_OUT        = $(BUILD)/deb

.PHONY: all asan flv test test-asan test-plain test-flv run bench soak history \
	fleet matrix deps deb clean rebuild $(NEEDS)

all: $(NGINX_BIN)

# util/build.sh runs every time: it notices changed sources, NGINX_SRC,
# RTMP_SRC and FLV_SRC among them, and does nothing when all is as built
rebuild:

$(NGINX_BIN): rebuild | need-build
	util/build.sh $(BUILD)

# clang: the packages of the test group
$(ASAN_BIN): rebuild | need-test
	util/build.sh $(ASAN_BUILD) asan

$(FLV_BIN): rebuild | need-test
	util/build.sh $(FLV_BUILD) plain flv

$(FLV_ASAN_BIN): rebuild | need-test
	util/build.sh $(FLV_ASAN_BUILD) asan flv

asan: $(ASAN_BIN)

flv: $(FLV_BIN)

# the suite twice: against the product binary, then under clang's ASan +
# UBSan; then the RTMP and HTTP-FLV tests against nginx-http-flv-module
test: test-plain test-asan test-flv

test-plain: need-test $(NGINX_BIN)
	ICP_GATE_NGINX=$(NGINX_BIN) prove -r t/

test-asan: need-test $(ASAN_BIN)
	ICP_GATE_NGINX=$(ASAN_BIN) ICP_GATE_ASAN=1 prove -r t/

test-flv: need-test $(FLV_BIN) $(FLV_ASAN_BIN)
	ICP_GATE_NGINX=$(FLV_BIN) prove $(FLV_TESTS)
	ICP_GATE_NGINX=$(FLV_ASAN_BIN) ICP_GATE_ASAN=1 prove $(FLV_TESTS)

run: need-run $(NGINX_BIN)
	util/run.sh $(NGINX_BIN)

bench: need-bench $(NGINX_BIN)
	python3 bench/run.py --nginx $(NGINX_BIN)

# 100 000 cold domains (SOAK_DOMAINS=N): worker memory and descriptors flat
soak: need-bench $(NGINX_BIN)
	python3 bench/run.py --nginx $(NGINX_BIN) --only soak

# the history checker's long runs: HISTORY_RUNS histories of 90 s each
# (10), from seed HISTORY_SEED (by default one from the clock), each
# checked, and a failing one shrunk; t/35-history.t runs two short ones
HISTORY_RUNS ?= 10

history: need-test $(NGINX_BIN)
	python3 t/history --nginx $(NGINX_BIN) --profile long \
	    --runs $(HISTORY_RUNS) $(if $(HISTORY_SEED),--seed $(HISTORY_SEED))

# a fleet of NODES (50) nginx of one worker on this machine, with a Redis
# master, its replica, three sentinels and the filing API stand-in: the
# report in bench/results/fleet.md (see README, "A fleet of 50 on one
# machine"); t/43-fleet.t runs 10
NODES ?= 50

fleet: need-test $(NGINX_BIN)
	python3 bench/fleet.py --nginx $(NGINX_BIN) --nodes $(NODES)

# the gate in every nginx of vendor/ and 1.22.1, smoke-tested; README's
# "Tested with" table (VERSIONS="1.26.3 1.31.4" for some)
matrix: need-test $(NGINX_BIN)
	util/matrix.sh $(VERSIONS)

# the Debian packages, into build/deb/ (make deps DEB=1: the tools alone)
deb: need-deb
	util/deb.sh $(DEB_OUT)

deps:
	@util/deps.sh install $(DEPS)

upper = $(if $(filter bench,$1),BENCH,DEB)

# need-GROUP: the packages of GROUP are there, or make deps is run, loudly;
# one at a time, so that two of them never run apt at once
need-test need-run need-bench need-deb: need-build

$(NEEDS): need-%:
ifeq ($(NODEPS),)
	@missing=$$(util/deps.sh check $*) || { \
	    echo "icp_gate: missing packages: $$missing; running make deps$(if $(filter bench deb,$*), $(call upper,$*)=1)"; \
	    $(MAKE) --no-print-directory deps $(if $(filter bench deb,$*),$(call upper,$*)=1); }
endif

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FLV_BUILD) $(FLV_ASAN_BUILD) build-matrix
