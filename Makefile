# slimtune — one binary, `slimtune`, built from the shared library (lib/) and the four stages.
# make            build build/slimtune
# make deps       install the Debian and npm packages the build, the demo and the tests need
# make test       unit, gradient and end-to-end tests
# make demo       dataset -> prepare -> train -> eval -> export with configs/spam-stories260k.json
# make validate   check a dataset for curators: DATA=train.csv [EVAL=test.csv] [CONFIG=...]
# make bench      training throughput on a stories15M-shaped model (F32, NF4 and Q4_K bases)
# make golden     regenerate the PyTorch golden-gradient fixtures (needs python3-torch)
# BUILD=dir       build somewhere else (parallel work trees)

BUILD   ?= build
CC      ?= gcc
ARCH    ?= -march=x86-64-v3
CFLAGS  ?= -O2 -g $(ARCH)
PKGS     = hdf5 openblas libcjson nettle
CFLAGS  += -std=gnu11 -Wall -Wextra -fopenmp -Ilib $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lcsv -lutf8proc -fopenmp -lm
SLIM_SHARED ?= ../shared
export SLIM_SHARED
# idle OpenMP threads sleep instead of spinning: on 2 busy cores spinning costs 2-7x (see slimtune.c)
OMP_WAIT_POLICY ?= passive
export OMP_WAIT_POLICY

LIB_SRC   := $(wildcard lib/*.c) $(wildcard data/*.c) $(wildcard train/*.c) $(wildcard eval/*.c) $(wildcard export/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(wildcard tests/*/test_*.c)
TEST_BIN  := $(TEST_SRC:%.c=$(BUILD)/%)
BENCH_SRC := $(wildcard tests/bench/*.c)

.PHONY: all deps test unit-tests demo bench validate train golden clean
all: $(BUILD)/slimtune

$(BUILD)/%.o: %.c $(wildcard lib/*.h) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libslim.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/slimtune: $(BUILD)/slimtune.o $(BUILD)/libslim.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libslim.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/libslim.a -o $@ $(LDLIBS)

deps:
	scripts/install-deps

test: $(BUILD)/slimtune $(TEST_BIN)
	BUILD=$(BUILD) scripts/run-tests $(TEST_BIN)

CONFIG ?= configs/spam-stories260k.json
demo: $(BUILD)/slimtune
	BUILD=$(BUILD) scripts/demo $(CONFIG)

# make validate DATA=train.csv [EVAL=test.csv] [CONFIG=c.json]
validate: $(BUILD)/slimtune
	$(BUILD)/slimtune data validate --config $(CONFIG) $(if $(DATA),--train $(DATA)) $(if $(EVAL),--eval $(EVAL))

train: $(BUILD)/slimtune
	$(BUILD)/slimtune train --config $(CONFIG)

bench: $(BUILD)/slimtune
	BUILD=$(BUILD) scripts/bench

# regenerate tests/golden fixtures: tiny models, slimtune quantize, the PyTorch reference (python3-torch)
golden: $(BUILD)/slimtune
	BUILD=$(BUILD) /usr/bin/python3 tests/golden/reference.py --slimtune $(BUILD)/slimtune

clean:
	rm -rf $(BUILD)
