# slimtune — one binary, `slimtune`, built from the shared library (lib/) and the four stages.
# make            build build/slimtune
# make deps       install the Debian and npm packages the build, the demo and the tests need
# make test       unit, gradient and end-to-end tests (installs the dependencies first)
# make test SANITIZE=1   the same, library and tests built with ASan + UBSan in build-san/
# make fuzz       libFuzzer targets of tests/fuzz, FUZZ_S seconds each (clang, build-fuzz/)
# make demo       deps -> dataset -> prepare -> train -> eval -> export with configs/spam-stories260k.json
# make validate   check a dataset for curators: DATA=train.csv [EVAL=test.csv] [CONFIG=...]
# make bench      training throughput on a stories15M-shaped model (F32, NF4 and Q4_K bases)
# make bench-mpi  data-parallel training: 2 MPI ranks against 1 process with 2 threads
# make bench-eval eval's label scoring with the cached prompt against a row per label (40 labels)
# make golden     regenerate the PyTorch golden-gradient fixtures (needs python3-torch)
# BUILD=dir       build somewhere else (parallel work trees)
# MPI=0           build without MPI (default: with it when mpicc is found; mpirun -np N slimtune train)

# AddressSanitizer + UndefinedBehaviorSanitizer, for make test SANITIZE=1 and the fuzz build
SANITIZERS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD   ?= build-san
SAN_FLAGS = $(SANITIZERS)
endif
BUILD   ?= build
CC      ?= gcc
ARCH    ?= -march=x86-64-v3
CFLAGS  ?= -O2 -g $(ARCH)
CFLAGS  += $(SAN_FLAGS)
PKGS     = hdf5 openblas libcjson nettle
BASE_CFLAGS = -std=gnu11 -Wall -Wextra -fopenmp -Ilib $(shell pkg-config --cflags $(PKGS))
CFLAGS  += $(BASE_CFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lcsv -lutf8proc -fopenmp -lm
# data-parallel training over MPI (lib/dist.c) when Open MPI's mpicc is there; MPI=0 builds without it
# (lib/dist.c is the one file that differs: a stamp rebuilds it when MPI changes)
MPI     ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
CFLAGS  += -DSLIM_MPI $(shell mpicc --showme:compile)
LDLIBS  += $(shell mpicc --showme:link)
endif
SLIM_SHARED ?= ../shared
export SLIM_SHARED
# idle OpenMP threads sleep instead of spinning: on 2 busy cores spinning costs 2-7x (see slimtune.c)
OMP_WAIT_POLICY ?= passive
export OMP_WAIT_POLICY

LIB_SRC   := $(wildcard lib/*.c lib/*/*.c) $(wildcard data/*.c) $(wildcard train/*.c) $(wildcard eval/*.c) $(wildcard export/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
HEADERS   := $(wildcard lib/*.h lib/*/*.h data/*.h train/*.h eval/*.h export/*.h)
TEST_SRC  := $(wildcard tests/*/test_*.c tests/*/*/test_*.c)
TEST_BIN  := $(TEST_SRC:%.c=$(BUILD)/%)
BENCH_SRC := $(wildcard tests/bench/*.c)

.PHONY: all deps test test-run demo bench bench-scale bench-mpi bench-eval validate train golden fuzz clean
all: $(BUILD)/slimtune

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/lib/dist.o: $(BUILD)/mpi-$(MPI).stamp
$(BUILD)/mpi-$(MPI).stamp:
	@mkdir -p $(BUILD) && rm -f $(BUILD)/mpi-*.stamp && touch $@

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

# `make test` and `make demo` install the dependencies before anything is compiled, so that either
# works as the first command on a fresh machine (the build needs the -dev packages' headers).
test:
	scripts/install-deps
	@$(MAKE) --no-print-directory test-run

test-run: $(BUILD)/slimtune $(TEST_BIN)
	BUILD=$(BUILD) SANITIZE=$(SANITIZE) scripts/run-tests $(TEST_BIN)

CONFIG ?= configs/spam-stories260k.json
demo:
	BUILD=$(BUILD) scripts/demo $(CONFIG)

# make validate DATA=train.csv [EVAL=test.csv] [CONFIG=c.json]
# With CONFIG given, that config applies whole (its data.labels, when declared, is the label set). With DATA
# and no CONFIG, the demo config gives only the model and the validate.* gates (--model-config): the labels
# are the train file's. With neither, the demo config validates its own data.
validate: $(BUILD)/slimtune
	$(BUILD)/slimtune data validate $(if $(and $(DATA),$(filter file,$(origin CONFIG))),--model-config,--config) $(CONFIG) $(if $(DATA),--train $(DATA)) $(if $(EVAL),--eval $(EVAL))

train: $(BUILD)/slimtune
	$(BUILD)/slimtune train --config $(CONFIG)

bench: $(BUILD)/slimtune
	BUILD=$(BUILD) scripts/bench

# memory and speed at the Llama-3.2-1B shape, checkpointing none vs layers, and the 8B plan (~15 min)
bench-scale: $(BUILD)/slimtune
	BUILD=$(BUILD) scripts/bench-scale

# 1 process x 2 threads against mpirun -np 2 x 1 thread, same global batch (stories15M shape, ~2 min)
bench-mpi: $(BUILD)/slimtune
	BUILD=$(BUILD) scripts/bench-mpi

# label scoring with a cached prompt vs one row per (example, label), 40 labels (~4 min)
bench-eval: $(BUILD)/slimtune
	BUILD=$(BUILD) scripts/bench-eval

# regenerate tests/golden fixtures: tiny models, slimtune quantize, the PyTorch reference (python3-torch)
golden: $(BUILD)/slimtune
	BUILD=$(BUILD) /usr/bin/python3 tests/golden/reference.py --slimtune $(BUILD)/slimtune

clean:
	rm -rf $(BUILD) build-san build-fuzz build-nompi

# ---------------------------------------------------------------------------------------------------
# fuzzing — make fuzz [FUZZ_S=30] [FUZZ_TARGETS="gguf csv"]
# libFuzzer targets tests/fuzz/fuzz_*.c (entry code in tests/fuzz/harness.h, shared with the regression
# test tests/fuzz/test_fuzz_regress.c), built with clang in build-fuzz/: the library sources with
# -fsanitize=fuzzer-no-link,address,undefined, each target with -fsanitize=fuzzer,address,undefined,
# OpenMP through clang's libomp (-fopenmp). scripts/run-fuzz generates the seed corpora from real files
# into build-fuzz/corpus/<target>/ and runs each target FUZZ_S seconds; any crash, leak, timeout or
# out-of-memory fails it and saves the input under build-fuzz/crashes/<target>/.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_S       ?= 30
FUZZ_CFLAGS   = -O1 -g $(ARCH) $(BASE_CFLAGS) $(SANITIZERS)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
.PHONY: fuzz-build

$(FUZZ_BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libslim.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.h $(FUZZ_BUILD)/libslim.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itests $< $(FUZZ_BUILD)/libslim.a -o $@ $(LDLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz: $(FUZZ_CC) not found; libFuzzer needs clang: make deps installs it" >&2; exit 1; }
	@$(MAKE) --no-print-directory fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_S=$(FUZZ_S) scripts/run-fuzz $(FUZZ_TARGETS)
