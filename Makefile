# icp_gate: see README.md.  Every target works on a bare Debian bookworm
# machine as root: missing packages and sources are fetched on the way.

BUILD       = $(CURDIR)/build
ASAN_BUILD  = $(CURDIR)/build-asan
NGINX_BIN   = $(BUILD)/sbin/nginx
ASAN_BIN    = $(ASAN_BUILD)/sbin/nginx
SOURCES     = config $(wildcard *.c src/*.c src/*.h)

.PHONY: all asan test test-asan test-plain run bench clean

all: $(NGINX_BIN)

$(NGINX_BIN): $(SOURCES) util/build.sh
	util/build.sh $(BUILD)

$(ASAN_BIN): $(SOURCES) util/build.sh
	util/build.sh $(ASAN_BUILD) asan

asan: $(ASAN_BIN)

# the suite twice: against the product binary, then under ASan + UBSan
test: test-plain test-asan

test-plain: $(NGINX_BIN)
	ICP_GATE_NGINX=$(NGINX_BIN) prove -r t/

test-asan: $(ASAN_BIN)
	ICP_GATE_NGINX=$(ASAN_BIN) ICP_GATE_ASAN=1 prove -r t/

run: $(NGINX_BIN)
	util/run.sh $(NGINX_BIN)

# Debian's nginx with lua-nginx-module is the OpenResty-style comparison
bench: $(NGINX_BIN)
	util/deps.sh wrk gnuplot-nox valgrind nginx libnginx-mod-http-lua
	python3 bench/run.py --nginx $(NGINX_BIN)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
